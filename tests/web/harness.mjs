// harness.mjs — what the tests of tests/web share: named steps that count
// failures, and the exit status.
let failed = 0;

export async function step(name, fn) {
  try {
    await fn();
    console.log("ok   " + name);
  } catch (e) {
    failed++;
    console.log("FAIL " + name + ": " + (e.stack || e.message));
  }
}

export function finish() {
  console.log(failed ? failed + " failed" : "all passed");
  process.exit(failed ? 1 : 0);
}
