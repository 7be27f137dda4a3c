CREATE TYPE "public"."refund_status" AS ENUM('pending', 'succeeded', 'failed');--> statement-breakpoint
-- A new enum value cannot be used in the transaction that adds it (the partial indexes below
-- name it), so the type is rebuilt with the value instead of ALTER TYPE ... ADD VALUE.
ALTER TYPE "public"."payment_status" RENAME TO "payment_status_old";--> statement-breakpoint
CREATE TYPE "public"."payment_status" AS ENUM('pending', 'requires_confirmation', 'succeeded', 'failed');--> statement-breakpoint
ALTER TABLE "payments" ALTER COLUMN "status" TYPE "public"."payment_status" USING "status"::text::"public"."payment_status";--> statement-breakpoint
DROP TYPE "public"."payment_status_old";--> statement-breakpoint
CREATE TABLE "outbox" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"topic" text NOT NULL,
	"key" text,
	"payload" jsonb NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"available_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"last_error" text,
	"processed_at" timestamp (3) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "test_provider_payments" (
	"id" text PRIMARY KEY NOT NULL,
	"idempotency_key" text NOT NULL,
	"reference" text NOT NULL,
	"amount_minor" integer NOT NULL,
	"currency" text NOT NULL,
	"status" text NOT NULL,
	"failure_reason" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "test_provider_refunds" (
	"id" text PRIMARY KEY NOT NULL,
	"idempotency_key" text NOT NULL,
	"payment_id" text NOT NULL,
	"amount_minor" integer NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "payments" ALTER COLUMN "provider_payment_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "refunds" ALTER COLUMN "provider_refund_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD COLUMN "lease_token" uuid;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD COLUMN "locked_until" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD COLUMN "resource_id" uuid;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "cart_id" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "cart_generation" integer;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "payment_method" text;--> statement-breakpoint
ALTER TABLE "refunds" ADD COLUMN "status" "refund_status" DEFAULT 'pending' NOT NULL;--> statement-breakpoint
-- Refunds recorded before this migration were made inside the transaction that wrote them.
UPDATE "refunds" SET "status" = 'succeeded';--> statement-breakpoint
ALTER TABLE "refunds" ADD COLUMN "counts_toward_order" boolean DEFAULT true NOT NULL;--> statement-breakpoint
ALTER TABLE "refunds" ADD COLUMN "failure_reason" text;--> statement-breakpoint
ALTER TABLE "refunds" ADD COLUMN "updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
CREATE INDEX "outbox_due_idx" ON "outbox" USING btree ("available_at") WHERE processed_at is null;--> statement-breakpoint
CREATE INDEX "outbox_key_idx" ON "outbox" USING btree ("key") WHERE processed_at is null;--> statement-breakpoint
CREATE UNIQUE INDEX "test_provider_payments_key" ON "test_provider_payments" USING btree ("idempotency_key");--> statement-breakpoint
CREATE UNIQUE INDEX "test_provider_refunds_key" ON "test_provider_refunds" USING btree ("idempotency_key");--> statement-breakpoint
CREATE UNIQUE INDEX "orders_cart_generation_key" ON "orders" USING btree ("cart_id","cart_generation");--> statement-breakpoint
CREATE UNIQUE INDEX "payments_one_in_flight_per_order" ON "payments" USING btree ("order_id") WHERE status in ('pending', 'requires_confirmation');--> statement-breakpoint
CREATE INDEX "payments_unsettled_idx" ON "payments" USING btree ("updated_at") WHERE status in ('pending', 'requires_confirmation');--> statement-breakpoint
CREATE INDEX "refunds_pending_idx" ON "refunds" USING btree ("updated_at") WHERE status = 'pending';