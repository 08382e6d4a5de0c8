// Drives `socratic label` in headless Chromium as a rater would, and fails unless five turns
// can be labelled with the keyboard and the mouse, a reload mid-way loses nothing, the page
// is blind and readable at phone width, it requests nothing off the loopback address, the
// server refuses a wrong token (403) and a bad score or dimension (400, nothing stored), and
// after the server stops `socratic calibrate` counts the five turns and report.html shows them.
// Usage:
//   node check-label.mjs SOCRATIC_BINARY RESULTS_DIR SCREENSHOT.png
import { checks, expect, launch } from "./harness.mjs";
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createInterface } from "node:readline";

const [binary, results, screenshot] = process.argv.slice(2);
if (!binary || !results || !screenshot) {
  console.error("usage: node check-label.mjs SOCRATIC_BINARY RESULTS_DIR SCREENSHOT.png");
  process.exit(2);
}

const { check, finish } = checks();

// The server, and the address it prints.
const server = spawn(binary, ["label", "--out", results, "--rater", "ana", "--seed", "11"], {
  stdio: ["ignore", "pipe", "inherit"],
});
const address = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: server.stdout });
  lines.on("line", (line) => {
    const match = line.match(/^open (http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]+&rater=ana)$/);
    if (match) resolve(match[1]);
  });
  server.on("exit", (code) => reject(new Error(`socratic label exited with ${code} before serving`)));
  setTimeout(() => reject(new Error("socratic label printed no address in 60 s")), 60000);
});
const origin = new URL(address).origin;
const token = new URL(address).searchParams.get("token");
const exited = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const seen = { errors: [], offLoopback: [], requests: 0 };
page.on("console", (m) => { if (m.type() === "error") seen.errors.push(m.text()); });
page.on("pageerror", (e) => seen.errors.push(e.message));
page.on("request", (r) => {
  seen.requests += 1;
  if (!r.url().startsWith(origin + "/")) seen.offLoopback.push(r.url());
});

const progress = () => page.locator("#progress").textContent();
/** Waits until the status line says the score was saved. */
async function saved(dimension, score) {
  const text = `Saved ${dimension.replaceAll("_", " ")}: ${score}`;
  await page.locator("#status", { hasText: text }).waitFor({ timeout: 5000 });
}
async function onTurn(n) {
  await page.locator("#turn-heading", { hasText: new RegExp(`^Turn ${n} of 30`) }).waitFor({ timeout: 5000 });
}
const dimensions = ["pedagogical_stance", "conceptual_fidelity", "persona_adaptation", "dialectical_progress"];
const keyboardScores = [[4, 3, 5, 2], [1, 2, 3, 4], [5, 5, 4, 4]];
const mouseScores = [[2, 3, 2, 3], [3, 4, 5, 1]];

await page.goto(address, { waitUntil: "load" });

await check("the page opens on the first turn, blind, with anchors and labelled inputs", async () => {
  await onTurn(1);
  expect((await progress()).startsWith("1 of 30"), `progress says ${await progress()}`);
  const body = await page.locator("body").innerText();
  for (const hidden of ["sim-", "rationale", "reveals_answer"]) {
    expect(!body.includes(hidden), `the page shows ${hidden}`);
  }
  expect(await page.locator("#scores fieldset").count() === 4, "not one group per dimension");
  expect(await page.locator("#scores fieldset legend").count() === 4, "a group has no legend");
  const radios = await page.locator("#scores input[type=radio]").count();
  expect(radios === 20, `${radios} score inputs`);
  expect(await page.locator("#scores label > input[type=radio]").count() === radios, "an input has no label");
  const anchor = await page.locator("#scores fieldset").first().locator("label").first().innerText();
  expect(anchor.includes("Lectures"), `the first anchor reads ${anchor}`);
  expect(await page.locator("#dialogue li.target.tutor").count() === 1, "the turn to score is not marked");
});

await check("three turns are labelled with the keyboard", async () => {
  for (let t = 0; t < 3; t++) {
    await onTurn(t + 1);
    for (let d = 0; d < 4; d++) {
      await page.keyboard.press(String(keyboardScores[t][d]));
      await saved(dimensions[d], keyboardScores[t][d]);
    }
    await page.keyboard.press("n");
  }
  await onTurn(4);
  expect((await progress()).startsWith("4 of 30 · 3 answered"), `progress says ${await progress()}`);
});

await check("a reload mid-way keeps every score and returns to the next turn", async () => {
  await page.reload({ waitUntil: "load" });
  await onTurn(4);
  expect((await progress()).startsWith("4 of 30 · 3 answered"), `progress says ${await progress()}`);
  await page.keyboard.press("p");
  await onTurn(3);
  for (let d = 0; d < 4; d++) {
    const checked = await page.locator(`#scores input[name=${dimensions[d]}]:checked`).getAttribute("value");
    expect(Number(checked) === keyboardScores[2][d], `${dimensions[d]} shows ${checked}`);
  }
  await page.locator("#next").click();
  await onTurn(4);
});

await check("two turns are labelled with the mouse", async () => {
  for (let t = 0; t < 2; t++) {
    await onTurn(t + 4);
    for (let d = 0; d < 4; d++) {
      const score = mouseScores[t][d];
      await page.locator(`#scores fieldset[data-dimension=${dimensions[d]}] label`, { has: page.locator(`input[value="${score}"]`) }).click();
      await saved(dimensions[d], score);
    }
    await page.locator("#next").click();
  }
  await onTurn(6);
  expect((await progress()).startsWith("6 of 30 · 5 answered"), `progress says ${await progress()}`);
});

await check("focus follows the work: the turn's heading, then the score groups in order", async () => {
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  expect(focused === "turn-heading", `focus is on ${focused}`);
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  const group = await page.evaluate(() => document.activeElement.closest("fieldset")?.dataset.dimension ?? document.activeElement.tagName);
  expect(group === "pedagogical_stance", `the second tab stop is ${group}`);
});

await check("it is readable on a phone-width screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow <= 0, `the page scrolls sideways by ${overflow} px`);
  const size = await page.locator("#scores input[type=radio]").first().boundingBox();
  expect(size && size.width >= 16, "score inputs are too small to tap");
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
});

await check("a wrong or missing token gets 403", async () => {
  for (const url of [`${origin}/`, `${origin}/api/sample`, `${origin}/?token=${"0".repeat(token.length)}`]) {
    const response = await fetch(url);
    expect(response.status === 403, `${url}: ${response.status}`);
  }
  const put = await fetch(`${origin}/api/turns/0/scores/pedagogical_stance?rater=ana`, { method: "PUT", body: '{"score": 3}' });
  expect(put.status === 403, `a score without the token: ${put.status}`);
});

await check("a score off the scale or a dimension the rubric lacks gets 400 and is not stored", async () => {
  const sample = async () => (await (await fetch(`${origin}/api/sample?token=${token}&rater=eve`)).json());
  for (const [dimension, score] of [["pedagogical_stance", 6], ["pedagogical_stance", 0], ["kindness", 3]]) {
    const response = await fetch(`${origin}/api/turns/5/scores/${dimension}?token=${token}&rater=eve`, {
      method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ score }),
    });
    expect(response.status === 400, `${dimension} ${score}: ${response.status}`);
  }
  const after = await sample();
  expect(after.labelled.length === 0, `eve has ${after.labelled.length} labelled turns`);
});

await check("the page requests nothing off the loopback address and logs no error", async () => {
  expect(seen.requests > 10, `only ${seen.requests} requests seen`);
  expect(seen.offLoopback.length === 0, seen.offLoopback.join(", "));
  expect(seen.errors.length === 0, seen.errors.join("; "));
});

await page.close();
server.kill("SIGINT");
const { code, signal } = await exited;

await check("the server stops cleanly on Ctrl-C", async () => {
  expect(code === 0, `exit ${code} (${signal})`);
});

await check("calibrate counts the five labelled turns and the report shows them", async () => {
  const printed = execFileSync(binary, ["calibrate", "--out", results], { encoding: "utf8" });
  expect(printed.includes("20 label(s) of 5 turn(s)"), printed.split("\n")[0]);
  expect(printed.includes("raters: ana"), printed.split("\n")[0]);
  const report = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await report.goto(pathToFileURL(join(results, "report.html")).href, { waitUntil: "load" });
  const rows = await report.locator("#calibration tbody tr").count();
  expect(rows === 4, `${rows} calibration rows`);
  const turns = await report.locator("#calibration tbody tr td:last-child").allTextContents();
  expect(turns.every((t) => t === "5"), `labelled turns ${turns}`);
  expect(readFileSync(join(results, "calibration.json"), "utf8").includes('"turns": 5'), "calibration.json");
});

await check("the labels export as the CSV calibrate imports", async () => {
  const file = join(results, "labels.csv");
  const printed = execFileSync(binary, ["label", "--out", results, "--export", file], { encoding: "utf8" });
  expect(printed.startsWith("20 label(s) written"), printed);
  const lines = readFileSync(file, "utf8").trim().split("\n");
  expect(lines[0] === "run_id,turn,dimension,score,rater" && lines.length === 21, `${lines.length} lines`);
});

await browser.close();
finish("label page");
