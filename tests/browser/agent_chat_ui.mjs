// Drives Agent Chat UI in the system's Chromium as a person would, through a whole PAHF loop.
//
//   node agent_chat_ui.mjs <ui url> <langgraph url> <screenshot dir>
//
// Run by tests/integration/test_agent_chat_ui.py, which starts the servers, installs the UI and
// playwright-core from the npm registry, and checks the memory the server wrote afterwards.
// NODE_PATH must reach playwright-core; CHROMIUM names the browser (never downloaded).
// Prints one JSON line of what was seen; exits non-zero, with the reason, when a step fails.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const [ui, api, shots] = process.argv.slice(2);
const STEP_MS = Number(process.env.STEP_TIMEOUT_MS || 60000);
const REQUEST =
  "Bring me a drink | situation: dehydrated after a run | options: hot coffee; ice water";
const ANSWER = "When I am dehydrated I want ice water, never hot coffee.";
const CORRECTION = "No: after a run I want hot coffee now, not ice water.";

const seen = { steps: [] };
let shot = 0;

async function snap(page, name) {
  shot += 1;
  const file = path.join(shots, `${String(shot).padStart(2, "0")}-${name}.png`);
  // The conversation scrolls inside its own pane: show its newest part.
  await page.evaluate(() => {
    for (const el of document.querySelectorAll("*")) {
      if (el.scrollHeight > el.clientHeight + 4) el.scrollTop = el.scrollHeight;
    }
  });
  await page.waitForTimeout(300);
  await page.screenshot({ path: file, fullPage: true });
  seen.steps.push(name);
}

async function bodyText(page) {
  return page.evaluate(() => document.body.innerText);
}

async function waitForText(page, text, count = 1) {
  await page.waitForFunction(
    ([t, n]) => document.body.innerText.split(t).length - 1 >= n,
    [text, count],
    { timeout: STEP_MS },
  );
}

async function send(page, text) {
  const box = page.getByPlaceholder("Type your message...");
  await box.fill(text);
  await page.getByRole("button", { name: "Send", exact: true }).click();
}

async function respond(page, text) {
  const box = page.getByPlaceholder("Your response here...");
  await box.waitFor({ timeout: STEP_MS });
  await box.fill(text);
  await page.getByRole("button", { name: "Send Response" }).click();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = null;
const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("pageerror", (err) => consoleErrors.push(String(err)));
try {
  const url = `${ui}/?apiUrl=${encodeURIComponent(api)}&assistantId=pahf`;
  await page.goto(url, { waitUntil: "networkidle", timeout: STEP_MS });
  await page.getByPlaceholder("Type your message...").waitFor({ timeout: STEP_MS });
  await snap(page, "opened");

  // 1. The request, typed in the plain form: the agent asks (the question widget).
  await send(page, REQUEST);
  await waitForText(page, "What do you prefer here");
  await page.getByPlaceholder("Your response here...").waitFor({ timeout: STEP_MS });
  await snap(page, "question");

  // 2. The answer, in the widget: the agent acts on it and shows the action for review.
  await respond(page, ANSWER);
  await waitForText(page, "I choose:");
  await page.getByRole("button", { name: "Accept" }).waitFor({ timeout: STEP_MS });
  seen.first_action = (await bodyText(page)).includes("I choose: ice water");
  await snap(page, "action");

  // 3. Rejected with a correction in the widget: the agent says what it learned.
  await respond(page, CORRECTION);
  await waitForText(page, "What I learned");
  seen.first_summary = (await bodyText(page)).includes("revised a preference");
  await snap(page, "learned");

  // 4. A second request: answered from memory, no question; approved with Accept.
  await send(page, REQUEST.replace("Bring", "Fetch"));
  await waitForText(page, "I choose:", 2);
  await page.getByRole("button", { name: "Accept" }).waitFor({ timeout: STEP_MS });
  const text = await bodyText(page);
  seen.questions_asked = text.split("What do you prefer here").length - 1;
  seen.second_action = text.split("I choose: hot coffee").length - 1;
  await snap(page, "from-memory");
  await page.getByRole("button", { name: "Accept" }).click();
  await waitForText(page, "What I learned", 2);
  await snap(page, "done");
  seen.thread_id = new URL(page.url()).searchParams.get("threadId");
} catch (err) {
  failed = String(err && err.stack ? err.stack : err);
  try {
    await snap(page, "failed");
  } catch {}
} finally {
  seen.page_errors = consoleErrors;
  await browser.close();
}
console.log(JSON.stringify(seen));
if (failed) {
  console.error(failed);
  process.exit(1);
}
