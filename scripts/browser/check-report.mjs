// Opens a report in headless Chromium as a reader would, and fails unless the leaderboard
// renders, a model and then a run open to that run's transcript and judgments by mouse and by
// keyboard, print hides the controls, the console stays free of errors and nothing is
// requested from the network. Usage:
//   node check-report.mjs REPORT.html SCREENSHOT.png [LARGE_REPORT.html]
// The large report, when given, is opened too, and the time to a usable page is printed (a
// figure for docs/performance.md, not a pass/fail check).
import { checks, expect, launch } from "./harness.mjs";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const [report, screenshot, large] = process.argv.slice(2);
if (!report || !screenshot) {
  console.error("usage: node check-report.mjs REPORT.html SCREENSHOT.png [LARGE_REPORT.html]");
  process.exit(2);
}

const browser = await launch();

const { check, finish } = checks();

/** A fresh page that records console errors and every request leaving the file. */
async function open(path) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const seen = { errors: [], network: [] };
  page.on("console", (m) => { if (m.type() === "error") seen.errors.push(m.text()); });
  page.on("pageerror", (e) => seen.errors.push(e.message));
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith("file:") && !url.startsWith("data:")) seen.network.push(url);
  });
  const started = Date.now();
  await page.goto(pathToFileURL(resolve(path)).href, { waitUntil: "load" });
  return { page, seen, started };
}

const { page, seen } = await open(report);

await check("the leaderboard renders with a row per model", async () => {
  const rows = await page.locator("#leaderboard tbody tr").count();
  expect(rows > 0, "no leaderboard rows");
  expect(await page.locator("#leaderboard a.model").count() === rows, "not every model links to its runs");
});

await check("the charts carry text alternatives", async () => {
  const charts = page.locator("svg[role=img]");
  const count = await charts.count();
  expect(count >= 4, `only ${count} charts`);
  for (let i = 0; i < count; i++) {
    const label = await charts.nth(i).getAttribute("aria-label");
    expect(label && label.length > 10, `chart ${i} has no text alternative`);
  }
});

let model = "";
await check("clicking a model lists its runs by scenario", async () => {
  const link = page.locator("#leaderboard a.model").first();
  model = (await link.textContent()).trim();
  await link.click();
  await page.locator("#run-list table.runs").waitFor({ timeout: 5000 });
  const caption = await page.locator("#run-list caption").textContent();
  expect(caption.includes(model), `the list is not of ${model}: ${caption}`);
  const tutors = await page.locator("#run-list tbody tr:not(.group) td:nth-child(2)").allTextContents();
  expect(tutors.length > 0 && tutors.every((t) => t === model), "runs of other models are listed");
  expect(await page.locator("#run-list tr.group").count() > 0, "runs are not grouped by scenario");
});

await check("clicking a run shows its transcript with its judgments", async () => {
  await page.locator("#run-list a[href^='#run/']").first().click();
  const run = page.locator("#run-detail article.run");
  await run.waitFor({ timeout: 5000 });
  const heading = await run.locator("h3").textContent();
  expect(heading.startsWith(model), `the run shown is not ${model}'s: ${heading}`);
  const tutorTurns = await run.locator(".msg.tutor").count();
  const studentTurns = await run.locator(".msg.student").count();
  expect(tutorTurns > 0, "no tutor turn");
  expect(studentTurns > 0, "no student turn");
  const judgments = await run.locator(".judgment").count();
  expect(judgments >= tutorTurns, `${judgments} judgments for ${tutorTurns} turns`);
  const text = await run.textContent();
  expect(/Judge /.test(text), "no judge named");
  expect(await run.locator(".judgment table td").count() > 0, "no scores per dimension");
});

await check("the keyboard reaches a model's runs and a run", async () => {
  await page.goto(page.url().split("#")[0], { waitUntil: "load" });
  await page.locator("#leaderboard a.model").last().focus();
  await page.keyboard.press("Enter");
  await page.locator("#run-list table.runs").waitFor({ timeout: 5000 });
  await page.locator("#run-list a[href^='#run/']").first().focus();
  await page.keyboard.press("Enter");
  await page.locator("#run-detail article.run").waitFor({ timeout: 5000 });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  expect(focused === "run-detail", `focus is on ${focused}, not the run`);
});

await check("filters by scenario and vector narrow the list", async () => {
  const scenario = await page.locator("#filters select[name=scenario] option").nth(1).textContent();
  await page.selectOption("#filters select[name=model]", "");
  await page.selectOption("#filters select[name=scenario]", scenario);
  await page.locator("#run-list table.runs").waitFor({ timeout: 5000 });
  const groups = await page.locator("#run-list tr.group th").allTextContents();
  expect(groups.length === 1 && groups[0].startsWith(scenario), `groups ${groups}`);
  const vector = await page.locator("#filters select[name=vector] option").nth(1).textContent();
  await page.selectOption("#filters select[name=scenario]", "");
  await page.selectOption("#filters select[name=vector]", vector);
  const caption = await page.locator("#run-list caption").textContent();
  expect(caption.includes(vector), `caption ${caption}`);
});

await check("a heatmap cell opens that model's runs of that scenario", async () => {
  await page.locator("#heatmap td a").first().click();
  await page.locator("#run-list table.runs").waitFor({ timeout: 5000 });
  const groups = await page.locator("#run-list tr.group").count();
  expect(groups === 1, `${groups} scenarios listed`);
});

await check("the telling section names its detector and a disagreeing turn opens its transcript", async () => {
  await page.goto(page.url().split("#")[0], { waitUntil: "load" });
  const telling = page.locator("#telling");
  const text = await telling.textContent();
  expect(/reveals_answer|verbatim/.test(text), "the detector is not named");
  expect(await telling.locator("tbody tr").count() > 0, "no agreement row");
  const links = telling.locator("a[href^='#run/']");
  if (await links.count() > 0) {
    const target = (await links.first().getAttribute("href")).slice("#run/".length);
    await links.first().click();
    const run = page.locator("#run-detail article.run");
    await run.waitFor({ timeout: 5000 });
    const label = await run.getAttribute("aria-label");
    expect(label === `Run ${target}`, `the run shown is ${label}, not ${target}`);
  }
});

await check("intervals carry their caution and the settings state the design's power", async () => {
  await page.goto(page.url().split("#")[0], { waitUntil: "load" });
  const intervals = await page.locator("#leaderboard tbody tr td:nth-child(4)").allTextContents();
  expect(intervals.length > 0 && intervals.every((t) => /\]\*|\]!|n\/a/.test(t)), `unmarked intervals at 8 scenarios: ${intervals}`);
  const caption = await page.locator("#leaderboard caption").textContent();
  expect(caption.includes("fewer than 16 scenarios"), `caption ${caption}`);
  const power = page.locator("#settings tr", { has: page.locator("th", { hasText: /^power$/ }) });
  expect(await power.count() === 1, "no power row in the settings");
  const text = await power.locator("td").textContent();
  expect(/detect a difference of \d+\.\d+ points/.test(text), `power says ${text}`);
});

await check("without human labels the report says its judges are not calibrated", async () => {
  const section = await page.locator("#calibration").innerText();
  expect(section.includes("Not calibrated") && section.includes("socratic label"), section);
  expect(await page.locator("nav a[href='#calibration']").count() === 1, "no link to the section");
});

await check("print hides the controls", async () => {
  await page.emulateMedia({ media: "print" });
  const nav = await page.evaluate(() => getComputedStyle(document.querySelector("nav")).display);
  const filters = await page.evaluate(() => getComputedStyle(document.getElementById("filters")).display);
  expect(nav === "none" && filters === "none", `nav ${nav}, filters ${filters}`);
  await page.emulateMedia({ media: "screen" });
});

await check("a screenshot is taken", async () => {
  await page.goto(page.url().split("#")[0] + "#model/" + encodeURIComponent(model), { waitUntil: "load" });
  await page.locator("#run-list a[href^='#run/']").first().click();
  await page.locator("#run-detail article.run").waitFor({ timeout: 5000 });
  await page.screenshot({ path: screenshot, fullPage: true });
});

await check("the console shows no errors", async () => {
  expect(seen.errors.length === 0, seen.errors.join("; "));
});

await check("the page makes no network request", async () => {
  expect(seen.network.length === 0, seen.network.join(", "));
});

if (large) {
  const big = await open(large);
  await big.page.locator("#leaderboard tbody tr").first().waitFor();
  const leaderboard = Date.now() - big.started;
  const clicked = Date.now();
  await big.page.locator("#leaderboard a.model").first().click();
  await big.page.locator("#run-list a[href^='#run/']").first().click();
  await big.page.locator("#run-detail article.run").waitFor({ timeout: 10000 });
  const drill = Date.now() - clicked;
  console.log(`large report: leaderboard after ${leaderboard} ms, a model's runs and one run after ${drill} ms more`);
  await check("the large report opens without errors or network requests", async () => {
    expect(big.seen.errors.length === 0, big.seen.errors.join("; "));
    expect(big.seen.network.length === 0, big.seen.network.join(", "));
  });
}

await browser.close();
finish("browser");
