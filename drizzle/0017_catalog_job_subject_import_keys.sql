CREATE TABLE "catalog_import_keys" (
	"job_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"key" text NOT NULL,
	"line" integer NOT NULL,
	"fields" text,
	"planned" boolean DEFAULT false NOT NULL,
	CONSTRAINT "catalog_import_keys_job_id_kind_key_pk" PRIMARY KEY("job_id","kind","key")
);
--> statement-breakpoint
ALTER TABLE "catalog_jobs" ADD COLUMN "subject" text DEFAULT 'products' NOT NULL;--> statement-breakpoint
ALTER TABLE "catalog_import_keys" ADD CONSTRAINT "catalog_import_keys_job_id_catalog_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."catalog_jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "catalog_import_keys_line_idx" ON "catalog_import_keys" USING btree ("job_id","kind","line");