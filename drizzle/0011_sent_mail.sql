CREATE TABLE "sent_mail" (
	"message_id" text NOT NULL,
	"recipient" text NOT NULL,
	"sent_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sent_mail_message_id_recipient_pk" PRIMARY KEY("message_id","recipient")
);
--> statement-breakpoint
CREATE INDEX "sent_mail_sent_at_idx" ON "sent_mail" USING btree ("sent_at");