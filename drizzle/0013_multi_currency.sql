CREATE TYPE "public"."price_list_kind" AS ENUM('sale', 'override');--> statement-breakpoint
CREATE TYPE "public"."price_list_status" AS ENUM('draft', 'active');--> statement-breakpoint
CREATE TABLE "customer_group_members" (
	"group_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"added_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "customer_group_members_group_id_user_id_pk" PRIMARY KEY("group_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "customer_groups" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "price_list_prices" (
	"price_list_id" uuid NOT NULL,
	"variant_id" uuid NOT NULL,
	"currency" text NOT NULL,
	"amount_minor" integer NOT NULL,
	CONSTRAINT "price_list_prices_price_list_id_variant_id_currency_pk" PRIMARY KEY("price_list_id","variant_id","currency"),
	CONSTRAINT "price_list_prices_amount_check" CHECK ("price_list_prices"."amount_minor" >= 0)
);
--> statement-breakpoint
CREATE TABLE "price_lists" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"kind" "price_list_kind" NOT NULL,
	"status" "price_list_status" DEFAULT 'draft' NOT NULL,
	"starts_at" timestamp (3) with time zone,
	"ends_at" timestamp (3) with time zone,
	"customer_group_id" uuid,
	"min_quantity" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "price_lists_check" CHECK ("price_lists"."min_quantity" >= 1 and ("price_lists"."starts_at" is null or "price_lists"."ends_at" is null or "price_lists"."starts_at" < "price_lists"."ends_at"))
);
--> statement-breakpoint
CREATE TABLE "product_price_ranges" (
	"product_id" uuid NOT NULL,
	"currency" text NOT NULL,
	"min_minor" integer NOT NULL,
	"max_minor" integer NOT NULL,
	CONSTRAINT "product_price_ranges_product_id_currency_pk" PRIMARY KEY("product_id","currency")
);
--> statement-breakpoint
CREATE TABLE "region_countries" (
	"country" text PRIMARY KEY NOT NULL,
	"region_id" uuid NOT NULL,
	CONSTRAINT "region_countries_country_check" CHECK ("region_countries"."country" ~ '^[A-Z]{2}$')
);
--> statement-breakpoint
CREATE TABLE "regions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"currency" text NOT NULL,
	"prices_include_tax" boolean DEFAULT false NOT NULL,
	"is_default" boolean DEFAULT false NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "regions_currency_check" CHECK ("regions"."currency" ~ '^[A-Z]{3}$')
);
--> statement-breakpoint
CREATE TABLE "variant_prices" (
	"variant_id" uuid NOT NULL,
	"currency" text NOT NULL,
	"amount_minor" integer NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "variant_prices_variant_id_currency_pk" PRIMARY KEY("variant_id","currency"),
	CONSTRAINT "variant_prices_amount_check" CHECK ("variant_prices"."amount_minor" >= 0)
);
--> statement-breakpoint
ALTER TABLE "coupons" ADD COLUMN "currency" text;--> statement-breakpoint
ALTER TABLE "customer_group_members" ADD CONSTRAINT "customer_group_members_group_id_customer_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."customer_groups"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "customer_group_members" ADD CONSTRAINT "customer_group_members_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "price_list_prices" ADD CONSTRAINT "price_list_prices_price_list_id_price_lists_id_fk" FOREIGN KEY ("price_list_id") REFERENCES "public"."price_lists"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "price_list_prices" ADD CONSTRAINT "price_list_prices_variant_id_product_variants_id_fk" FOREIGN KEY ("variant_id") REFERENCES "public"."product_variants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "price_lists" ADD CONSTRAINT "price_lists_customer_group_id_customer_groups_id_fk" FOREIGN KEY ("customer_group_id") REFERENCES "public"."customer_groups"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "product_price_ranges" ADD CONSTRAINT "product_price_ranges_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "region_countries" ADD CONSTRAINT "region_countries_region_id_regions_id_fk" FOREIGN KEY ("region_id") REFERENCES "public"."regions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "variant_prices" ADD CONSTRAINT "variant_prices_variant_id_product_variants_id_fk" FOREIGN KEY ("variant_id") REFERENCES "public"."product_variants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "customer_group_members_user_idx" ON "customer_group_members" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "customer_groups_name_key" ON "customer_groups" USING btree ("name");--> statement-breakpoint
CREATE INDEX "price_list_prices_variant_idx" ON "price_list_prices" USING btree ("variant_id","currency");--> statement-breakpoint
CREATE INDEX "price_lists_active_idx" ON "price_lists" USING btree ("starts_at","ends_at") WHERE status = 'active';--> statement-breakpoint
CREATE INDEX "product_price_ranges_listing_idx" ON "product_price_ranges" USING btree ("currency","min_minor","product_id");--> statement-breakpoint
CREATE INDEX "region_countries_region_idx" ON "region_countries" USING btree ("region_id");--> statement-breakpoint
CREATE UNIQUE INDEX "regions_name_key" ON "regions" USING btree ("name");--> statement-breakpoint
CREATE UNIQUE INDEX "regions_one_default" ON "regions" USING btree ("is_default") WHERE is_default;--> statement-breakpoint
-- Upgrade in place. The store's currency is STORE_CURRENCY, which the migrator hands over as the
-- setting shop.store_currency (db/client.ts); EUR, the config default, when it is not set.
INSERT INTO "regions" ("name", "currency", "is_default")
  SELECT 'Default', coalesce(nullif(current_setting('shop.store_currency', true), ''), 'EUR'), true;--> statement-breakpoint
-- Every variant price becomes that currency's price, and every product's range that currency's range.
INSERT INTO "variant_prices" ("variant_id", "currency", "amount_minor")
  SELECT v."id", r."currency", v."price_minor" FROM "product_variants" v CROSS JOIN "regions" r WHERE r."is_default";--> statement-breakpoint
INSERT INTO "product_price_ranges" ("product_id", "currency", "min_minor", "max_minor")
  SELECT p."id", r."currency", p."min_price_minor", p."max_price_minor" FROM "products" p CROSS JOIN "regions" r
  WHERE r."is_default" AND EXISTS (SELECT 1 FROM "product_variants" v WHERE v."product_id" = p."id");--> statement-breakpoint
-- Fixed-amount coupons were in the store currency.
UPDATE "coupons" SET "currency" = (SELECT "currency" FROM "regions" WHERE "is_default") WHERE "kind" = 'fixed';--> statement-breakpoint
ALTER TABLE "coupons" ADD CONSTRAINT "coupons_currency_check" CHECK (("coupons"."kind" = 'fixed') = ("coupons"."currency" is not null));