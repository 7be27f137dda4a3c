CREATE TYPE "public"."image_sizes_status" AS ENUM('pending', 'ready', 'failed');--> statement-breakpoint
ALTER TABLE "uploaded_files" ADD COLUMN "sizes_status" "image_sizes_status";--> statement-breakpoint
ALTER TABLE "uploaded_files" ADD COLUMN "sizes" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "uploaded_files" ADD COLUMN "sizes_error" text;--> statement-breakpoint
CREATE INDEX "uploaded_files_sizes_pending_idx" ON "uploaded_files" USING btree ("created_at") WHERE "uploaded_files"."purpose" = 'product_image' and "uploaded_files"."sizes_status" is distinct from 'ready' and "uploaded_files"."sizes_status" is distinct from 'failed';