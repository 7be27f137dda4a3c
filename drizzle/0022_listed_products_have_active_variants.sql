ALTER TABLE "products" ADD COLUMN "has_active_variant" boolean DEFAULT false NOT NULL;--> statement-breakpoint
-- Whether each product has an active variant (src/catalog.ts refreshProductAggregates).
UPDATE "products" p SET "has_active_variant" = true WHERE EXISTS (SELECT 1 FROM "product_variants" v WHERE v.product_id = p.id AND v.is_active);
--> statement-breakpoint
-- A currency's range is its active variants' only (refreshPriceRanges): a currency only inactive
-- variants are sold in loses its row, and the others their inactive variants' prices.
DELETE FROM "product_price_ranges" pr WHERE NOT EXISTS (
	SELECT 1 FROM "variant_prices" vp JOIN "product_variants" v ON v.id = vp.variant_id
	WHERE v.product_id = pr.product_id AND v.is_active AND vp.currency = pr.currency
);
--> statement-breakpoint
UPDATE "product_price_ranges" pr SET "min_minor" = r.min_minor, "max_minor" = r.max_minor
FROM (
	SELECT v.product_id, vp.currency, min(vp.amount_minor) AS min_minor, max(vp.amount_minor) AS max_minor
	FROM "variant_prices" vp JOIN "product_variants" v ON v.id = vp.variant_id
	WHERE v.is_active GROUP BY v.product_id, vp.currency
) r
WHERE r.product_id = pr.product_id AND r.currency = pr.currency AND (pr.min_minor, pr.max_minor) IS DISTINCT FROM (r.min_minor, r.max_minor);
