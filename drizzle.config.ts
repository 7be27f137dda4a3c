import { defineConfig } from 'drizzle-kit'

// Generates SQL migrations from db/schema into drizzle/; they are committed and applied at start-up.
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema/index.ts',
  out: './drizzle',
})
