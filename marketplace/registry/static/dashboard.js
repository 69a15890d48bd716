// agora registry dashboard: agents from /v1/search, economy events from /v1/events + SSE. No dependencies.
"use strict";

const DECIMALS = 18n;
const state = { events: [], role: "" };

// Amounts are uint256: keep integers that do not fit a double exact by reading their source text.
function parseExact(text) {
  return JSON.parse(text, (key, value, ctx) =>
    typeof value === "number" && !Number.isSafeInteger(value) && ctx && /^\d+$/.test(ctx.source)
      ? BigInt(ctx.source) : value);
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return parseExact(await response.text());
}

function formatAGT(units) {
  const value = BigInt(units);
  const whole = value / 10n ** DECIMALS;
  const frac = (value % 10n ** DECIMALS).toString().padStart(Number(DECIMALS), "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac.slice(0, 6)}` : `${whole}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function short(address) {
  return address.length > 20 ? `${address.slice(0, 12)}…${address.slice(-6)}` : address;
}

function ago(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function agentRow(entry, now) {
  const card = entry.card;
  const who = el("td", {}, el("div", { class: "name" }, card.name || "(unnamed)"),
    el("div", { class: "addr", title: card.address }, short(card.address)));
  const offers = el("td");
  for (const o of card.offerings) {
    offers.append(el("div", { class: "offer" }, `${o.model_id} `, el("span", { class: "kind" },
      `· ${o.job_kind} · ${formatAGT(o.price_per_unit)} AGT/${o.unit}`)));
  }
  const price = entry.best_price === null ? "—" : `${formatAGT(entry.best_price)} AGT`;
  const rep = `${entry.reputation.score} · ${entry.reputation.count} receipts`;
  const age = now - entry.last_seen;
  const ttl = entry.expires_at - entry.last_seen;
  const live = el("td", { class: "live" }, el("span", { class: `dot ${age < ttl / 2 ? "live" : "stale"}` }), ago(age));
  return el("tr", { "data-address": card.address }, who,
    el("td", {}, el("span", { class: `role ${card.role}` }, card.role)), offers,
    el("td", { class: "num" }, price), el("td", { class: "num" }, rep), live);
}

async function refreshAgents() {
  const role = state.role ? `&role=${encodeURIComponent(state.role)}` : "";
  const page = await getJSON(`/v1/search?limit=100${role}`);
  const body = document.querySelector("#agents tbody");
  const now = Date.now() / 1000;
  body.replaceChildren(...page.results.map((entry) => agentRow(entry, now)));
  document.getElementById("agent-count").textContent = String(page.results.length);
  document.getElementById("agents-empty").classList.toggle("hidden", page.results.length > 0);
}

function eventItem(event) {
  const when = new Date(event.time * 1000).toLocaleTimeString();
  return el("li", { "data-id": event.id, title: event.tx_hash },
    el("span", { class: "block" }, `#${event.block}`),
    el("span", { class: "what" }, el("span", { class: "contract" }, event.contract), ` ${event.event} `,
      el("span", { class: "addr" }, when)),
    el("span", { class: "summary" }, event.summary));
}

function addEvent(event) {
  if (state.events.some((e) => e.id === event.id)) return;
  state.events.push(event);
  const list = document.getElementById("events");
  list.prepend(eventItem(event));
  while (list.children.length > 200) list.lastChild.remove();
  document.getElementById("event-count").textContent = String(state.events.length);
  document.getElementById("events-empty").classList.add("hidden");
}

let agentsTimer = null;
function scheduleAgents() {
  clearTimeout(agentsTimer);
  agentsTimer = setTimeout(() => refreshAgents().catch(console.error), 150);
}

function connect() {
  const dot = document.getElementById("stream-dot");
  const label = document.getElementById("stream-state");
  const source = new EventSource("/v1/events/stream");
  source.onopen = () => { dot.className = "dot on"; label.textContent = "live"; };
  source.onerror = () => { dot.className = "dot off"; label.textContent = "reconnecting…"; };
  source.addEventListener("chain", (msg) => addEvent(parseExact(msg.data)));
  source.addEventListener("agents", scheduleAgents);
}

async function main() {
  document.getElementById("role-filter").addEventListener("change", (e) => {
    state.role = e.target.value;
    scheduleAgents();
  });
  await refreshAgents();
  const recent = await getJSON("/v1/events?limit=50");
  recent.events.forEach(addEvent);
  connect();
  setInterval(scheduleAgents, 5000);  // liveness ages move even when nothing is written
}

main().catch((err) => { document.getElementById("stream-state").textContent = `error: ${err.message}`; });
