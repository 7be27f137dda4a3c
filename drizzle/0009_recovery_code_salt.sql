ALTER TABLE "recovery_codes" ADD COLUMN "salt" text;
-- Codes stored before keep their plain SHA-256 (salt null): they still work, and are salted
-- (argon2id of that SHA-256) at their owner's next sign-in with a second factor.
