CREATE TABLE "price_list_lowest_prices" (
	"price_list_id" uuid NOT NULL,
	"currency" text NOT NULL,
	"product_id" uuid NOT NULL,
	"min_minor" integer NOT NULL,
	CONSTRAINT "price_list_lowest_prices_price_list_id_currency_product_id_pk" PRIMARY KEY("price_list_id","currency","product_id")
);
--> statement-breakpoint
ALTER TABLE "price_list_lowest_prices" ADD CONSTRAINT "price_list_lowest_prices_price_list_id_price_lists_id_fk" FOREIGN KEY ("price_list_id") REFERENCES "public"."price_lists"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "price_list_lowest_prices" ADD CONSTRAINT "price_list_lowest_prices_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "price_list_lowest_prices_product_idx" ON "price_list_lowest_prices" USING btree ("product_id");--> statement-breakpoint
-- The lowest prices of the lists that exist (src/prices.ts refreshListLowestPrices, for every product).
INSERT INTO "price_list_lowest_prices" ("price_list_id", "currency", "product_id", "min_minor")
WITH sold AS (
	SELECT v.id, v.product_id, vp.currency, vp.amount_minor
	FROM product_variants v JOIN variant_prices vp ON vp.variant_id = v.id
	WHERE v.is_active
), base AS (
	SELECT product_id, currency, min(amount_minor) AS min_minor FROM sold GROUP BY product_id, currency
)
SELECT lp.price_list_id, s.currency, s.product_id, least(min(lp.amount_minor), b.min_minor)
FROM sold s
JOIN price_list_prices lp ON lp.variant_id = s.id AND lp.currency = s.currency
JOIN base b ON b.product_id = s.product_id AND b.currency = s.currency
GROUP BY lp.price_list_id, s.currency, s.product_id, b.min_minor;
