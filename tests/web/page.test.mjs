// page.test.mjs — the web page in a real browser: Debian's Chromium driven
// by playwright-core. Log in with a user key, ask for recommendations in
// the chat and see the answer stream in with item cards, open the
// recommendations view, follow a "why", switch model, view an evaluation
// report with its chart. Screenshots go to $SHOTS.
// env: TAILOR (the server), KEY (user 1's key), SHOTS (a folder).
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { step, finish } from "./harness.mjs";

const url = process.env.TAILOR, key = process.env.KEY, shots = process.env.SHOTS;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});

const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));

await step("log in with a user key", async () => {
  await page.goto(url + "/");
  await page.getByTestId("key").fill("tlr_wrong");
  await page.getByTestId("login-button").click();
  await page.getByTestId("login-error").filter({ hasText: "does not open" }).waitFor({ timeout: 5000 });
  await page.getByTestId("key").fill(key);
  await page.getByTestId("login-button").click();
  await page.getByTestId("who").filter({ hasText: "user 1" }).waitFor({ timeout: 5000 });
});

await step("chat: the answer streams in, with item cards", async () => {
  // Count the answer's growth as it arrives: more than one update means it streamed.
  await page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver(() => window.__updates++).observe(document.getElementById("messages"), {
      childList: true, subtree: true, characterData: true,
    });
  });
  await page.getByTestId("chat-input").fill("three comedies from the 90s");
  await page.getByTestId("chat-send").click();
  const cards = page.getByTestId("messages").getByTestId("card");
  await cards.nth(2).waitFor({ timeout: 10000 });
  assert.equal(await cards.count(), 3);
  const answer = await page.getByTestId("answer").first().textContent();
  assert.match(answer, /Here are 3 picks/);
  assert.ok((await page.evaluate(() => window.__updates)) > 3, "the answer arrived in pieces");
  // Each card shows the year and genres it fetched.
  await page.getByTestId("messages").getByTestId("card").first().locator(".meta").filter({ hasText: "Comedy" }).waitFor();
  await page.screenshot({ path: shots + "/chat.png" });
});

await step("chat: a standing constraint holds", async () => {
  await page.getByTestId("chat-input").fill("no comedies");
  await page.getByTestId("chat-send").click();
  await page.getByTestId("chat-input").fill("four films from the 80s");
  await page.getByTestId("chat-send").click();
  await page.getByTestId("messages").getByTestId("card").nth(6).waitFor({ timeout: 10000 });
  // The last answer's cards, once each has fetched its genres.
  const texts = await page.waitForFunction(() => {
    const all = document.querySelectorAll("#messages .cards");
    const metas = [...all[all.length - 1].querySelectorAll(".meta")].map((m) => m.textContent);
    return metas.every((t) => t) && metas;
  }).then((h) => h.jsonValue());
  assert.equal(texts.length, 4);
  for (const t of texts) assert.ok(!t.includes("Comedy"), "a comedy after 'no comedies': " + t);
});

await step("recommendations: cards, and why", async () => {
  await page.getByRole("button", { name: "Recommendations" }).click();
  await page.getByTestId("model").selectOption("itemknn");
  await page.getByTestId("recs-go").click();
  const cards = page.getByTestId("recs").getByTestId("card");
  await cards.nth(9).waitFor({ timeout: 10000 });
  await cards.first().getByTestId("why").click();
  const because = cards.first().getByTestId("because");
  await because.waitFor({ state: "visible" });
  assert.match(await because.textContent(), /because you had/);
  await page.screenshot({ path: shots + "/recommendations.png" });
});

await step("recommendations: switch model", async () => {
  await page.getByTestId("model").selectOption("pop");
  await page.getByTestId("recs-go").click();
  await page.getByTestId("recs-note").filter({ hasText: "pop (pop)" }).waitFor({ timeout: 10000 });
  const cards = page.getByTestId("recs").getByTestId("card");
  await cards.first().getByTestId("why").click();
  assert.match(await cards.first().getByTestId("because").textContent(), /popular/);
});

await step("evaluation: a report with its chart", async () => {
  await page.getByRole("button", { name: "Evaluation" }).click();
  await page.getByTestId("report-link").first().click();
  const chart = page.getByTestId("chart").first();
  await chart.waitFor({ timeout: 10000 });
  await page.waitForFunction(() => {
    const img = document.querySelector("[data-testid=chart]");
    return img && img.complete && img.naturalWidth > 0;
  });
  assert.ok((await page.getByTestId("report").locator("table").count()) > 0, "the report's tables");
  await page.screenshot({ path: shots + "/evaluation.png", fullPage: true });
});

await step("no script errors", async () => assert.deepEqual(errors, []));
await browser.close();
finish();
