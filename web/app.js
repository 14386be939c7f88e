// app.js — the page: log in with an API key, chat with the recommender
// (answers streamed as server-sent events, items as cards), ask a model for
// recommendations with the reasons behind each, read evaluation reports.
// Every text from the server is put in with textContent: item titles and
// answers are data, never markup.
"use strict";

const $ = (id) => document.getElementById(id);
let key = localStorage.getItem("tailor.key") || "";
let me = null;
let session = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + key }, opts.body ? { "Content-Type": "application/json" } : {});
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}
const getJSON = async (path) => (await api(path)).json();

// ---- log in ------------------------------------------------------------------

async function login(k) {
  key = k;
  try {
    me = await getJSON("/api/me");
  } catch (e) {
    $("login-error").textContent = "That key does not open this server: " + e.message;
    return;
  }
  localStorage.setItem("tailor.key", key);
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").textContent = me.user ? "user " + me.user : "admin";
  await loadModels();
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  login($("key").value.trim());
});

document.querySelectorAll(".tab").forEach((b) =>
  b.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === b));
    document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== "view-" + b.dataset.view));
    if (b.dataset.view === "reports") loadReports();
  })
);

// ---- item cards ----------------------------------------------------------------

async function itemMeta(id) {
  try {
    const it = await getJSON("/api/items/" + encodeURIComponent(id));
    const a = it.attributes || {};
    const parts = [];
    if (a.year) parts.push(a.year);
    if (Array.isArray(a.genres)) parts.push(a.genres.join(", "));
    return parts.join(" · ");
  } catch (e) {
    return "";
  }
}

function card(title, id, reason, because, explanation) {
  const c = el("div", "card");
  c.dataset.testid = "card";
  c.setAttribute("data-testid", "card");
  c.appendChild(el("h3", "", title));
  const meta = el("div", "meta", "");
  c.appendChild(meta);
  itemMeta(id).then((m) => (meta.textContent = m));
  if (reason) c.appendChild(el("div", "reason", reason));
  if (because) {
    const btn = el("button", "why", "why?");
    btn.setAttribute("data-testid", "why");
    const list = el("ul");
    list.hidden = true;
    list.setAttribute("data-testid", "because");
    if (!because.length) list.appendChild(el("li", "", explanation === "popularity" ? "it is popular" : "this model gives no reasons"));
    because.forEach((b) => list.appendChild(el("li", "", (explanation === "attention" ? "you watched " : "because you had ") + b.title)));
    btn.addEventListener("click", () => (list.hidden = !list.hidden));
    c.appendChild(btn);
    c.appendChild(list);
  }
  return c;
}

// ---- chat ------------------------------------------------------------------------

async function send(text) {
  const box = $("messages");
  box.appendChild(el("div", "msg user", text));
  const bot = el("div", "msg bot", "");
  bot.setAttribute("data-testid", "answer");
  box.appendChild(bot);
  try {
    if (!session) {
      const s = await (await api("/api/sessions", { method: "POST", body: JSON.stringify(me.user ? {} : {}) })).json();
      session = s.session;
    }
    const res = await api("/api/sessions/" + session + "/messages", { method: "POST", body: JSON.stringify({ text, stream: true }) });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const event = (block.match(/^event: (.*)$/m) || [])[1];
        const data = (block.match(/^data: (.*)$/m) || [])[1];
        if (!data) continue;
        const d = JSON.parse(data);
        if (event === "token") bot.textContent += d.text;
        else if (event === "error") bot.textContent += "\n(" + d.error.message + ")";
        else if (event === "reply" && d.items && d.items.length) {
          const cards = el("div", "cards");
          d.items.forEach((it) => cards.appendChild(card(it.title, it.id, it.reason)));
          box.appendChild(cards);
        }
      }
    }
  } catch (e) {
    bot.textContent = "Error: " + e.message;
    bot.classList.add("error");
  }
  box.lastElementChild.scrollIntoView({ block: "end" });
}

// One turn at a time: a message sent while the answer to the previous one
// is still coming waits for it (two turns of one session sent at once could
// be answered out of order, e.g. "no comedies" after the films it forbids).
let turns = Promise.resolve();
$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("chat-input").value.trim();
  if (!t) return;
  $("chat-input").value = "";
  turns = turns.then(() => send(t));
});

// ---- recommendations ---------------------------------------------------------------

async function loadModels() {
  const sel = $("model");
  sel.textContent = "";
  try {
    const m = await getJSON("/api/models");
    m.models.forEach((x) => {
      const o = el("option", "", x.name + " (" + x.kind + ")" + (x.active ? " — active" : ""));
      o.value = x.name;
      o.selected = x.active;
      sel.appendChild(o);
    });
  } catch (e) {
    $("recs-note").textContent = e.message;
  }
}

$("recs-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("recs");
  out.textContent = "";
  $("recs-note").textContent = "";
  if (!me.user) {
    $("recs-note").textContent = "An admin key has no user of its own: log in with a user key to see your recommendations.";
    return;
  }
  const q = new URLSearchParams({ k: $("k").value, model: $("model").value, explain: "true" });
  if ($("filter").value.trim()) q.append("filter", $("filter").value.trim());
  try {
    const r = await getJSON("/api/users/" + encodeURIComponent(me.user) + "/recommendations?" + q);
    $("recs-note").textContent = r.model + " (" + r.kind + ")" + (r.fallback ? ": the model knows nothing of you yet, so these are the most popular" : "");
    r.items.forEach((it) =>
      out.appendChild(card(it.title, it.item, "score " + it.score.toFixed(3) + " · " + it.popularity + " people had it", it.because || [], r.explanation || it.explanation))
    );
  } catch (e) {
    $("recs-note").textContent = e.message;
  }
});

// ---- evaluation reports ----------------------------------------------------------------

// The subset of markdown that tailor's reports use: headings, lists,
// tables, paragraphs (inline code shown plain).
function renderMarkdown(md, into) {
  const lines = md.split("\n").map((l) => l.replace(/`/g, ""));
  let table = null, list = null;
  for (const line of lines) {
    if (line.startsWith("- ")) {
      if (!list) into.appendChild((list = el("ul")));
      list.appendChild(el("li", "", line.slice(2)));
      continue;
    }
    list = null;
    if (line.startsWith("|")) {
      if (/^\|[\s:|-]+\|$/.test(line)) continue;
      const cells = line.split("|").slice(1, -1).map((c) => c.trim());
      if (!table) {
        table = el("table");
        const wrap = el("div", "scroll");
        wrap.appendChild(table);
        into.appendChild(wrap);
        const tr = el("tr");
        cells.forEach((c) => tr.appendChild(el("th", "", c)));
        table.appendChild(tr);
      } else {
        const tr = el("tr");
        cells.forEach((c) => tr.appendChild(el("td", "", c)));
        table.appendChild(tr);
      }
      continue;
    }
    table = null;
    if (!line.trim() || line.startsWith("![")) continue;
    const h = line.match(/^(#+)\s+(.*)$/);
    into.appendChild(h ? el("h" + Math.min(h[1].length + 1, 4), "", h[2]) : el("p", "", line));
  }
}

async function showReport(r) {
  const box = $("report");
  box.textContent = "";
  box.appendChild(el("h2", "", r.dir));
  const q = (f) => "/api/reports/file?" + new URLSearchParams({ dir: r.dir, file: f });
  if (r.files.includes("report.md")) renderMarkdown(await (await api(q("report.md"))).text(), box);
  for (const f of r.files.filter((f) => f.endsWith(".svg"))) {
    const blob = await (await api(q(f))).blob();
    const img = el("img");
    img.alt = f;
    img.setAttribute("data-testid", "chart");
    img.src = URL.createObjectURL(blob);
    box.appendChild(img);
  }
}

async function loadReports() {
  const list = $("report-list");
  list.textContent = "";
  try {
    const r = await getJSON("/api/reports");
    if (!r.reports.length) list.appendChild(el("p", "note", "No reports in " + r.folder + " yet: tailor eval --report " + r.folder + "/NAME"));
    r.reports.forEach((x) => {
      const b = el("button", "", x.dir);
      b.setAttribute("data-testid", "report-link");
      b.addEventListener("click", () => showReport(x));
      list.appendChild(b);
    });
  } catch (e) {
    list.appendChild(el("p", "error", e.message));
  }
}

if (key) login(key);
