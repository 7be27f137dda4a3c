-- Options made before currencies were priced in the store currency: the default region's.
ALTER TABLE "shipping_options" ADD COLUMN "currency" text;--> statement-breakpoint
UPDATE "shipping_options" SET "currency" = coalesce((SELECT "currency" FROM "regions" WHERE "is_default"), nullif(current_setting('shop.store_currency', true), ''), 'EUR');--> statement-breakpoint
ALTER TABLE "shipping_options" ALTER COLUMN "currency" SET NOT NULL;
