import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { chromium } from 'playwright-core'
import { buildTestApp } from './helpers.js'
import { registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// Swagger UI as QA uses it, in Debian's Chromium driven by playwright-core (no browser download).
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const SCREENSHOT = 'test-artifacts/swagger-ui.png'

t.test('Swagger UI loads, takes a bearer token, and "Try it out" on the product listing answers 200', { skip: existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (apt-get install chromium)` }, async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  await createProduct(app, admin.headers, { name: 'Visible In Swagger' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } })
  const consoleErrors: string[] = []
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })

  await page.goto(`${base}/docs`)
  await page.waitForSelector('.swagger-ui .information-container .title', { timeout: 20_000 })
  t.match(await page.textContent('.swagger-ui .information-container .title'), /Shop API/)

  // Authorize with a bearer token.
  await page.click('.auth-wrapper .authorize')
  await page.fill('.modal-ux input[type=text]', admin.headers.authorization.replace('Bearer ', ''))
  await page.click('.modal-ux .auth-btn-wrapper .authorize')
  await page.click('.modal-ux .btn-done')

  // Try it out on GET /products.
  // From 100 operations on, Swagger UI renders only those in view: scroll as QA would until it appears.
  const operation = page.locator('#operations-products-listProducts')
  for (let turn = 0; turn < 200 && (await operation.count()) === 0; turn++) await page.mouse.wheel(0, 800)
  await operation.locator('.opblock-summary').click()
  await operation.locator('.try-out__btn').click()
  await operation.locator('.execute').click()
  const status = operation.locator('.live-responses-table tbody .response-col_status').first()
  await status.waitFor({ timeout: 20_000 })
  t.equal((await status.textContent())?.trim(), '200')
  t.match(await operation.locator('.live-responses-table .microlight').first().textContent(), /Visible In Swagger/)
  t.match(await operation.locator('.request-url').textContent() ?? '', /\/products/)

  mkdirSync('test-artifacts', { recursive: true })
  await page.screenshot({ path: SCREENSHOT, fullPage: false })
  t.same(consoleErrors.filter((e) => /Content Security Policy|Refused/.test(e)), [], 'no CSP violations')
})
