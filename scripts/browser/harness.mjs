// What both browser checks share: a headless Chromium that reaches nothing on its own, and a
// tally of named checks that prints TAP-like lines and a summary.
import { chromium } from "playwright-core";

/** Headless Chromium from `$CHROMIUM` or Debian's package, with background traffic off. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/** Named checks: each failure is recorded and the rest still run. */
export function checks() {
  let passed = 0;
  const failures = [];
  return {
    async check(name, body) {
      try {
        await body();
        passed += 1;
        console.log(`ok - ${name}`);
      } catch (error) {
        failures.push(name);
        console.log(`not ok - ${name}: ${error.message.split("\n")[0]}`);
      }
    },
    /** Prints `LABEL: N passed, M failed` and exits non-zero on any failure. */
    finish(label) {
      console.log(`${label}: ${passed} passed, ${failures.length} failed`);
      process.exit(failures.length ? 1 : 0);
    },
  };
}

/** Throws `message` unless `condition` holds. */
export function expect(condition, message) {
  if (!condition) throw new Error(message);
}
