ALTER TABLE "user_identities" ADD COLUMN "confirmed_at" timestamp (3) with time zone;--> statement-breakpoint
-- Links from before confirmation was recorded: one whose provider verified the account's own
-- address (the mailbox vouches for it), or the provider account of an account without a password
-- (the account's origin), counts as confirmed; any other could have been made by a session alone.
UPDATE "user_identities" AS i SET "confirmed_at" = i."created_at" FROM "users" AS u
WHERE u."id" = i."user_id" AND ((i."email_verified" AND i."email" = u."email") OR u."password_hash" IS NULL);
