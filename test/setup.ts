// tap runs this once before the test files. The work runs in a child process without tap's
// coverage collection: coverage is off for the suite, yet tap gathers it from this script, and
// a report of what one migration run touched reads as if the tests ran no code.
import { execFileSync } from 'node:child_process'

const { NODE_V8_COVERAGE: _coverage, ...env } = process.env
execFileSync(process.execPath, ['--import', 'tsx', 'test/template-db.ts'], { env, stdio: 'inherit' })
