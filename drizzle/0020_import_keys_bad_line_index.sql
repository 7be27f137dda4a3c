DROP INDEX "catalog_import_keys_line_idx";--> statement-breakpoint
CREATE INDEX "catalog_import_keys_bad_line_idx" ON "catalog_import_keys" USING btree ("job_id","line") WHERE kind = 'bad';