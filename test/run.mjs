// `npm test`'s runner (after test/services.sh): runs the tap test files, three at once, each a
// plain `node` process on JavaScript compiled by esbuild, and prints one TAP stream with tap's
// closing count (`# { total, pass, fail }`).
//
// Why not tap's own runner: it loads every test process with module loader hooks (its processinfo
// and, for TypeScript, tsx's), and on Node 20 such hooks run on a thread of their own with a round
// trip per module. That cost about 2.3 s of CPU for each of the ~95 test processes (measured:
// health.test 6.2 CPU-s under tap's arguments with tsx, 3.6-4.2 s as plain node on compiled JS),
// about a fifth of the suite's CPU on a machine the suite keeps busy. The test files are still
// tap's (the `tap` library): `npx tap test/x.test.ts` runs one the usual way.
//
// Usage: node test/run.mjs [test files...]   (default: every test/**/*.test.ts)
// TEST_JOBS (3) files run at once; TEST_FILE_TIMEOUT_MS (300000) bounds each.
import { Buffer } from 'node:buffer'
import { spawn, execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, existsSync } from 'node:fs'
import { constants } from 'node:os'
import { dirname, join } from 'node:path'
import { clearTimeout, setTimeout } from 'node:timers'
import { build } from 'esbuild'
import { Parser } from 'tap-parser'

const root = process.cwd()
// Inside the checkout, so a compiled file finds node_modules by walking up as the source does.
const out = join(root, '.test-build')
const jobs = Number(process.env.TEST_JOBS ?? 3)
const timeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 300_000)
const timed = existsSync('/usr/bin/time')
const started = Date.now()

// A copy of the checkout's files (tracked and new, not ignored) with each .ts compiled beside it:
// what tests read next to themselves (migrations, mail templates, manifests) is where they look.
const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' })
  .split('\0').filter((f) => f && existsSync(f))
rmSync(out, { recursive: true, force: true })
for (const file of files) {
  mkdirSync(join(out, dirname(file)), { recursive: true })
  copyFileSync(file, join(out, file))
}
symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir')
const sources = files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
await build({ entryPoints: sources.map((f) => join(out, f)), outdir: out, outbase: out, format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' })

const asked = process.argv.slice(2)
// The slowest files first (test/slow-files.txt), then the rest by name: in name order a slow file
// could start late and run alone at the end, while the other jobs sat idle (about 20 s of a full
// run, simulated on three CI logs' file times).
const slowest = readFileSync('test/slow-files.txt', 'utf8').split('\n').filter((line) => line && !line.startsWith('#'))
const rank = (f) => (slowest.includes(f) ? slowest.indexOf(f) : slowest.length)
const tests = (asked.length ? asked : sources.filter((f) => f.startsWith('test/') && f.endsWith('.test.ts')))
  .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))

// tap's `before`: the template database every test database is copied from.
execFileSync(process.execPath, [join(out, 'test/setup.js')], { stdio: 'inherit' })

/** Counts a file's assertions as tap does: the points of its subtests, not the subtests' own closing points. */
function countPoints(parser, totals) {
  let children = 0
  parser.on('child', (child) => { children++; countPoints(child, totals) })
  parser.on('assert', (point) => {
    if (children > 0) { children--; return } // a subtest's closing point: its own points were counted
    totals.total++
    if (point.todo) totals.todo++
    else if (point.skip) totals.skip++
    else if (point.ok) totals.pass++
    else totals.fail++
  })
}

const totals = { total: 0, pass: 0, fail: 0, skip: 0, todo: 0 }
let number = 0

function runFile(test) {
  return new Promise((resolve) => {
    const fileStarted = Date.now()
    const compiled = join(out, test.replace(/\.ts$/, '.js'))
    // A process group of its own, so a timeout ends the servers the test started too.
    // Under /usr/bin/time where it exists, which writes the file's CPU seconds (its own and those
    // of the processes it waited for: servers, npm, builds) to cpuFile: CPU, not wall time, is what
    // a full run on two CPUs is short of, so each file's line says how much it used.
    const cpuFile = `${compiled}.cpu`
    const command = timed ? ['/usr/bin/time', '-f', '%U %S', '-o', cpuFile, process.execPath, compiled] : [process.execPath, compiled]
    const child = spawn(command[0], command.slice(1), { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TAP: '1', TAP_TIMEOUT: String(timeoutMs / 1000), TEST_BUILD_DIR: out } })
    const parser = new Parser()
    const fileTotals = { total: 0, pass: 0, fail: 0, skip: 0, todo: 0 }
    countPoints(parser, fileTotals)
    const stdout = []
    const stderr = []
    child.stdout.on('data', (chunk) => { stdout.push(chunk); parser.write(chunk) })
    child.stderr.on('data', (chunk) => stderr.push(chunk))
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid, 'SIGKILL') } catch { /* gone */ } }, timeoutMs)
    child.on('close', (exitCode, exitSignal) => {
      clearTimeout(timer)
      // time exits with the file's status, but for a file killed by a signal with 128 + its number:
      // its report says which signal ("Command terminated by signal 9"), above the times.
      const report = timed && existsSync(cpuFile) ? readFileSync(cpuFile, 'utf8').trim().split('\n') : []
      const killedBy = Number(/terminated by signal (\d+)/.exec(report.join('\n'))?.[1])
      const signal = killedBy ? Object.keys(constants.signals).find((name) => constants.signals[name] === killedBy) ?? exitSignal : exitSignal
      const code = killedBy ? null : exitCode
      parser.end()
      const ms = Date.now() - fileStarted
      const text = Buffer.concat(stdout).toString('utf8')
      const ok = !timedOut && code === 0 && parser.ok && fileTotals.fail === 0
      for (const key of Object.keys(totals)) totals[key] += fileTotals[key]
      if (!ok && fileTotals.fail === 0) { totals.total++; totals.fail++ } // a crash or a timeout counts as a failure
      const lines = [`# Subtest: ${test}`, ...text.replace(/\n$/, '').split('\n').map((line) => (line ? `    ${line}` : '    '))]
      const [user, system] = (report.at(-1) ?? '').split(/\s+/).map(Number)
      const cpuMs = Number.isFinite(user) && Number.isFinite(system) ? ` cpu=${Math.round((user + system) * 1000)}ms` : ''
      lines.push(`${ok ? 'ok' : 'not ok'} ${++number} - ${test} # time=${ms}ms${cpuMs}`)
      if (!ok) {
        lines.push('  ---', `  exitCode: ${code}`, `  signal: ${signal}`, ...(timedOut ? [`  timeout: ${timeoutMs}`] : []), '  ...')
      }
      process.stdout.write(`${lines.join('\n')}\n\n`)
      if (stderr.length) process.stderr.write(Buffer.concat(stderr))
      resolve()
    })
  })
}

const queue = [...tests]
await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
  while (queue.length) await runFile(queue.shift())
}))

const counted = Object.entries(totals).filter(([key, value]) => key === 'total' || value > 0).map(([key, value]) => `${key}: ${value}`)
process.stdout.write(`1..${number}\n# { ${counted.join(', ')} }\n# time=${Date.now() - started}ms\n`)
process.exitCode = totals.fail > 0 ? 1 : 0
