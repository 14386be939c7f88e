// openai.test.mjs — the official openai package, unmodified, against
// tailor serve's /v1 (stories260K behind it): models, chat (plain and
// streamed, with logprobs), a tool call round trip, JSON-schema output, embeddings, and
// an unsupported field refused with 400.
// env: TAILOR_LLM (the server), KEY (an API key).
import OpenAI from "openai";
import assert from "node:assert/strict";
import { step, finish } from "./harness.mjs";

const client = new OpenAI({ baseURL: process.env.TAILOR_LLM + "/v1", apiKey: process.env.KEY, maxRetries: 0 });

let model;
await step("models.list", async () => {
  const list = [];
  for await (const m of client.models.list()) list.push(m);
  assert.equal(list.length, 1);
  model = list[0].id;
});

const messages = [{ role: "user", content: "Once upon a time" }];
let plain;
await step("chat.completions.create", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 12, seed: 3 });
  plain = r.choices[0].message.content;
  assert.equal(typeof plain, "string");
  assert.ok(plain.length > 0);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 12);
});

await step("chat.completions.create, streamed", async () => {
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 12, seed: 3, stream: true,
                                                        stream_options: { include_usage: true } });
  let text = "", chunks = 0, usage = null;
  for await (const c of stream) {
    if (c.choices[0]?.delta?.content) { text += c.choices[0].delta.content; chunks++; }
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, plain); // same seed, same text
  assert.ok(chunks > 3);
  assert.equal(usage.completion_tokens, 12);
});

await step("chat.completions.create with logprobs", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 6, seed: 3, logprobs: true,
                                                   top_logprobs: 4 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, 6);
  assert.equal(lp.map((t) => t.token).join(""), r.choices[0].message.content);
  for (const t of lp) {
    assert.ok(t.logprob <= 0 && t.top_logprobs.length === 4);
    assert.ok(t.top_logprobs.every((a, i) => i === 0 || a.logprob <= t.top_logprobs[i - 1].logprob));
    assert.ok(t.logprob <= t.top_logprobs[0].logprob + 1e-5);
  }
});

const tools = [{ type: "function", function: { name: "forecast", description: "the weather",
  parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 },
                                              days: { type: "integer", minimum: 1, maximum: 7 } },
                required: ["city", "days"] } } }];
await step("a tool call round trip", async () => {
  const ask = [{ role: "user", content: "Weather in Oslo for two days?" }];
  const r = await client.chat.completions.create({ model, messages: ask, tools, tool_choice: "required", seed: 1 });
  const msg = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  const call = msg.tool_calls[0];
  assert.equal(call.function.name, "forecast");
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, "string");
  assert.ok(args.city.length <= 12);
  assert.ok(Number.isInteger(args.days) && args.days >= 1 && args.days <= 7);
  const back = await client.chat.completions.create({ model, tools, tool_choice: "none", max_tokens: 8,
    messages: [...ask, msg, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ sky: "clear" }) }] });
  assert.equal(typeof back.choices[0].message.content, "string");
});

await step("JSON-schema output", async () => {
  const schema = { type: "object", properties: { title: { type: "string", maxLength: 20 },
                                                  stars: { type: "integer", minimum: 1, maximum: 5 } },
                   required: ["title", "stars"], additionalProperties: false };
  for (let seed = 0; seed < 3; seed++) {
    const r = await client.chat.completions.create({ model, seed, temperature: 1, messages: [{ role: "user", content: "Rate it" }],
      response_format: { type: "json_schema", json_schema: { name: "rating", schema, strict: true } } });
    const v = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(v).sort(), ["stars", "title"]);
    assert.ok(Number.isInteger(v.stars) && v.stars >= 1 && v.stars <= 5);
    assert.ok(typeof v.title === "string" && v.title.length <= 20);
  }
});

await step("embeddings.create", async () => {
  const r = await client.embeddings.create({ model, input: ["a quiet drama", "loud action"] });
  assert.equal(r.data.length, 2);
  const v = r.data[0].embedding;
  assert.ok(Array.isArray(v) && v.length > 0);
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, "normalised: " + norm);
});

await step("an unsupported field is a 400 naming it", async () => {
  await assert.rejects(client.chat.completions.create({ model, messages, logit_bias: { 1: 5 } }),
    (e) => e.status === 400 && /logit_bias/.test(e.message));
});

finish();
