// agora live economy view: polls the read-only /v1/economy and redraws without reloading. No dependencies;
// uses parseExact, getJSON, formatAGT and el from dashboard.js.
"use strict";

const ECONOMY_POLL_MS = 1000;
const CHART = { width: 800, height: 240, left: 58, right: 12, top: 12, bottom: 22 };
const ROLE_COLORS = {
  seller: "#087f5b", validator: "#d9480f", user: "#1864ab", advertiser: "#5f3dc4", escrowed: "#868e96",
  other: "#343a40",
};
// The treasury holds the whole supply: on the same axis it would flatten every other line.
const CHART_HIDDEN = new Set(["treasury"]);
const SVG_NS = "http://www.w3.org/2000/svg";

function agt(units) {
  return Number(BigInt(units) / 10n ** 12n) / 1e6;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function stateBadge(state) {
  return el("span", { class: `state ${state}` }, state);
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function drawChart(series, block) {
  const chart = document.getElementById("balance-chart");
  const roles = [...new Set(series.flatMap((p) => Object.keys(p.roles)))].filter((r) => !CHART_HIDDEN.has(r)).sort();
  const xs = series.map((p) => p.block);
  const x0 = xs.length ? xs[0] : 0;
  const x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 1;
  const ymax = niceMax(Math.max(0, ...series.flatMap((p) => roles.map((r) => agt(p.roles[r] ?? 0)))));
  const w = CHART.width - CHART.left - CHART.right;
  const h = CHART.height - CHART.top - CHART.bottom;
  const px = (b) => CHART.left + ((b - x0) / Math.max(1, x1 - x0)) * w;
  const py = (v) => CHART.top + h - (v / ymax) * h;
  const nodes = [];
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    nodes.push(svg("line", { class: "grid", x1: CHART.left, x2: CHART.width - CHART.right, y1: py(v), y2: py(v) }));
    nodes.push(svg("text", { x: CHART.left - 6, y: py(v) + 4, "text-anchor": "end" }, `${v.toLocaleString()}`));
  }
  nodes.push(svg("text", { x: CHART.left, y: CHART.height - 4 }, `block ${x0}`));
  nodes.push(svg("text", { x: CHART.width - CHART.right, y: CHART.height - 4, "text-anchor": "end" }, `block ${x1}`));
  for (const role of roles) {
    const points = series.map((p) => `${px(p.block).toFixed(1)},${py(agt(p.roles[role] ?? 0)).toFixed(1)}`);
    nodes.push(svg("polyline", { points: points.join(" "), stroke: ROLE_COLORS[role] || "#000", "data-role": role }));
  }
  chart.replaceChildren(...nodes);
  chart.dataset.points = String(series.length);
  chart.dataset.block = String(block ?? "");
  const last = series.length ? series[series.length - 1].roles : {};
  document.getElementById("chart-legend").replaceChildren(...[...roles, ...CHART_HIDDEN].filter((r) => r in last)
    .map((role) => el("span", {}, el("span", { class: "swatch", style: `background:${ROLE_COLORS[role] || "#000"}` }),
      role, el("b", {}, `${formatAGT(last[role])} AGT`))));
  document.getElementById("chart-block").textContent = block === null ? "—" : `block ${block}`;
}

function countsText(states) {
  return Object.entries(states).map(([k, n]) => `${n} ${k}`).join(" · ");
}

function fillTable(id, rows) {
  document.querySelector(`#${id} tbody`).replaceChildren(...rows);
}

function drawChannels(channels) {
  const rows = [...channels.rows].reverse().map((c) => el("tr", { "data-id": String(c.id) },
    el("td", {}, String(c.id)), el("td", {}, `${c.sender} → ${c.recipient}`),
    el("td", { class: "num" }, formatAGT(c.deposit)), el("td", { class: "num" }, formatAGT(c.claimed)),
    el("td", {}, stateBadge(c.state))));
  fillTable("channels", rows);
  document.getElementById("channel-count").textContent = String(channels.rows.length);
  const settled = channels.rows.filter((c) => c.state !== "open").length;
  document.getElementById("channel-states").textContent =
    `${channels.rows.length - settled} open · ${settled} settled (${countsText(channels.states)})`;
}

function drawJobs(jobs) {
  const rows = [...jobs.rows].reverse().map((j) => el("tr", { "data-id": String(j.id) },
    el("td", {}, String(j.id)), el("td", {}, `${j.client} → ${j.provider}`), el("td", {}, j.evaluator),
    el("td", { class: "num" }, formatAGT(j.budget)), el("td", {}, stateBadge(j.state))));
  fillTable("jobs", rows);
  document.getElementById("job-count").textContent = String(jobs.rows.length);
  document.getElementById("job-states").textContent = countsText(jobs.states);
}

function drawDisputes(disputes, validations) {
  const items = [...disputes].reverse().map((d) => {
    const committee = d.committee.map((m) => {
      const vote = d.votes.find((v) => v.voter === m.member);
      const cls = vote ? (vote.supports_accused ? "vote for" : "vote against") : "vote";
      const said = vote ? (vote.supports_accused ? "✓ accused" : "✗ accused") : "…";
      return el("span", { class: cls }, `${m.member} (${formatAGT(m.weight)}) ${said}  `);
    });
    const slashed = d.slashed ? ` · slashed ${formatAGT(d.slashed)} AGT` : "";
    return el("li", { "data-id": String(d.id) },
      el("div", {}, `#${d.id} `, el("b", {}, d.challenger), " disputes ", el("b", {}, d.accused), " ",
        stateBadge(d.state), slashed),
      el("div", { class: "committee" }, "committee: ", ...(committee.length ? committee : ["being drawn…"])));
  });
  document.getElementById("disputes").replaceChildren(...items);
  document.getElementById("dispute-count").textContent = String(disputes.length);
  document.getElementById("validation-stats").textContent =
    `${validations.attestations} attestations · ${validations.disputes} disputes · ` +
    `${formatAGT(validations.slashed)} AGT slashed`;
}

function drawLineage(lineage, royalties) {
  const rows = lineage.map((m) => el("tr", { "data-id": String(m.id) },
    el("td", {}, `#${m.id}`), el("td", {}, m.creator),
    el("td", {}, m.parents.length ? m.parents.map((p) => `#${p}`).join(", ") : "—"),
    el("td", { class: "num" }, m.creator in royalties ? `${formatAGT(royalties[m.creator])} AGT` : "—")));
  fillTable("lineage", rows);
  document.getElementById("model-count").textContent = String(lineage.length);
}

function drawCampaigns(campaigns) {
  const rows = [...campaigns].reverse().map((c) => el("tr", { "data-id": String(c.id) },
    el("td", {}, String(c.id)), el("td", {}, `${c.advertiser} → ${c.merchant}`),
    el("td", { class: "num" }, formatAGT(c.budget)), el("td", { class: "num" }, String(c.conversions)),
    el("td", { class: "num" }, formatAGT(c.paid)), el("td", {}, stateBadge(c.state))));
  fillTable("campaigns", rows);
  document.getElementById("campaign-count").textContent = String(campaigns.length);
}

function drawPanels(panels) {
  const nodes = panels.map((panel) => {
    const head = el("tr", {}, ...panel.columns.map((c) => el("th", {}, c)));
    const body = panel.rows.map((row) => el("tr", {}, ...row.map((cell) => el("td", {}, String(cell)))));
    return el("div", { class: "panel", "data-market": panel.market },
      el("div", { class: "panel-head" }, el("h2", {}, panel.title)),
      el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body))),
      el("p", { class: "note" }, panel.note));
  });
  document.getElementById("market-panels").replaceChildren(...nodes);
}

function drawRun(run) {
  const label = document.getElementById("run-state");
  if (!run.status) { label.textContent = "chain view (no economy run published)"; return; }
  label.textContent = `scenario ${run.scenario} · ${run.status}${run.phase ? ` · phase: ${run.phase}` : ""}`;
}

async function refreshEconomy() {
  const view = await getJSON("/v1/economy");
  drawChart(view.series, view.block);
  drawChannels(view.channels);
  drawJobs(view.jobs);
  drawDisputes(view.disputes, view.validations);
  drawLineage(view.lineage, view.run.royalties || {});
  drawCampaigns(view.campaigns);
  drawPanels(view.run.panels || []);
  drawRun(view.run);
}

async function pollEconomy() {
  try {
    await refreshEconomy();
  } catch (err) {
    document.getElementById("run-state").textContent = `economy view unavailable: ${err.message}`;
  }
  setTimeout(pollEconomy, ECONOMY_POLL_MS);
}

pollEconomy();
