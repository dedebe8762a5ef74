// The helios viewer: four pages (runs, a run's matrix, a trial, two runs compared) rendered from the JSON
// API, with live updates over server-sent events. Plain DOM, no dependencies.
"use strict";

const FILTERS = ["stage", "agent", "model", "status", "error"];
const FINISHED = (status) => status !== "pending" && status !== "running";

let stream = null; // the EventSource of the page shown, if it is live
let page = null; // what the current page shows, for live updates
let renderQueued = false;

// ---------- DOM helpers ----------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  const app = document.getElementById("app");
  app.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function crumbs(...items) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(
    ...items.flatMap((item, i) => [
      ...(i > 0 ? [el("span", { class: "sep", text: "›" })] : []),
      item.href ? el("a", { href: item.href, text: item.text }) : el("span", { text: item.text }),
    ]),
  );
}

function setLive(state) {
  const badge = document.getElementById("live-state");
  badge.hidden = !state;
  badge.textContent = state ? `live: ${state}` : "";
  badge.dataset.state = state || "";
}

const enc = encodeURIComponent;
const runHref = (run, query) => `#/run/${enc(run)}${query ? `?${query}` : ""}`;
const trialHref = (run, key) => `#/run/${enc(run)}/trial/${key.split("/").map(enc).join("/")}`;
const fileUrl = (run, path) => `/api/runs/${enc(run)}/files/${path.split("/").map(enc).join("/")}`;

function fmtReward(reward) {
  if (reward === null || reward === undefined) return "—";
  return Number.isInteger(reward) ? String(reward) : reward.toFixed(2);
}
const fmtPct = (x) => (x === null ? "—" : `${Math.round(x * 100)}%`);
const fmtCost = (x) => (x === null || x === undefined ? "—" : `$${x.toFixed(x < 1 ? 4 : 2)}`);
const fmtSecs = (x) => (x === null || x === undefined ? "—" : `${x.toFixed(x < 10 ? 2 : 1)} s`);

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function failure(error) {
  show(el("p", { class: "error-box", text: `Cannot load this page: ${error.message}` }));
}

// ---------- Routing ----------

function route() {
  if (stream) {
    stream.close();
    stream = null;
  }
  page = null;
  setLive(null);
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const load =
    parts[0] === "compare"
      ? showCompare(new URLSearchParams(query || ""))
      : parts[0] === "run" && parts[2] === "trial"
        ? showTrial(parts[1], parts.slice(3).join("/"))
        : parts[0] === "run" && parts[1]
          ? showRun(parts[1], new URLSearchParams(query || ""))
          : showRuns();
  load.catch(failure);
}

// Follows a live run. The page's data is loaded again once the stream is open (`hello`),
// and messages that arrive while it loads are applied after it, so nothing that happened
// between the first load and the subscription is lost.
function listen(run, reload, handlers) {
  stream = new EventSource(`/api/runs/${enc(run)}/events`);
  let waiting = null;
  const apply = (name, message) => (waiting ? waiting.push([name, message]) : handlers[name](message));
  stream.addEventListener("hello", async () => {
    waiting = [];
    try {
      await reload();
    } finally {
      const queued = waiting;
      waiting = null;
      queued.forEach(([name, message]) => handlers[name](message));
      document.body.dataset.stream = "open";
    }
  });
  for (const name of Object.keys(handlers)) {
    stream.addEventListener(name, (event) => apply(name, JSON.parse(event.data)));
  }
}

// ---------- Runs ----------

async function showRuns() {
  crumbs({ text: "runs" });
  const runs = await getJson("/api/runs");
  if (runs.length === 0) {
    show(el("p", { class: "muted", text: "No runs here yet. `helios apply PIPELINE` writes one." }));
    return;
  }
  const rows = runs.map((run) =>
    el(
      "tr",
      { class: "run-row" },
      el("td", {}, el("a", { href: runHref(run.name), text: run.name }), run.live ? el("span", { class: "badge running", text: "live" }) : null),
      el("td", { text: run.pipeline || "—" }),
      el("td", { class: "num", text: `${run.finished} / ${run.planned}` }),
      el("td", { class: "num", text: fmtPct(run.finished ? run.passed / run.finished : null) }),
      el("td", { class: "num", text: run.mean_reward === null ? "—" : run.mean_reward.toFixed(3) }),
      el("td", { class: "num", text: run.errors }),
      el("td", { class: "num", text: fmtCost(run.cost_usd) }),
      el("td", { class: "muted", text: run.modified || "" }),
    ),
  );
  show(
    el("h1", { text: "Runs" }),
    el(
      "table",
      { class: "list", id: "runs" },
      el("thead", {}, el("tr", {}, ["run", "pipeline", "finished", "pass rate", "mean reward", "errors", "cost", "updated"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows),
    ),
    runs.length > 1 ? compareForm(runs) : null,
  );
}

// Two runs picked to compare: B against A.
function compareForm(runs) {
  const choice = (name, selected) =>
    el(
      "select",
      { name },
      runs.map((run, i) => el("option", { value: run.name, text: run.name, selected: i === selected })),
    );
  const a = choice("a", 0);
  const b = choice("b", 1);
  return el(
    "form",
    {
      id: "compare-form",
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        location.hash = `#/compare?${new URLSearchParams({ a: a.value, b: b.value })}`;
      },
    },
    el("label", {}, "compare B ", b),
    el("label", {}, " against A ", a),
    el("button", { type: "submit", text: "compare" }),
  );
}

// ---------- Statistics and comparisons ----------

const fmtNum = (x) => (x === null || x === undefined ? "—" : x.toFixed(3));
const fmtSigned = (x) => (x === null || x === undefined ? "—" : `${x >= 0 ? "+" : ""}${x.toFixed(3)}`);
const fmtInterval = (ci, fmt) => (ci ? ` [${fmt(ci[0])}, ${fmt(ci[1])}]` : "");
const fmtEstimate = (e) => (e ? `${fmtNum(e.mean)}${fmtInterval(e.ci95, fmtNum)}` : "—");

function groupLabel(row) {
  const parts = [row.stage, row.agent];
  if (row.model) parts.push(row.model);
  const params = Object.entries(row.params || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return parts.join(" · ") + (params.length ? ` (${params.join(", ")})` : "");
}

// Per group: denominators, mean reward and pass rate with 95% intervals, pass@k.
function statsTable(summary) {
  if (!summary || !summary.rows.length) return null;
  const maxK = Math.max(0, ...summary.rows.map((r) => (r.stats ? r.stats.pass_at_k.length : 0)));
  const ks = Array.from({ length: maxK }, (_, i) => i + 1);
  const head = el(
    "tr",
    {},
    ["group", "scored", "left out", "mean reward [95% CI]", "pass rate [95% CI]", ...ks.map((k) => `pass@${k}`)].map((h) => el("th", { text: h })),
  );
  const body = summary.rows.map((row) => {
    const s = row.stats;
    return el(
      "tr",
      { class: "group", dataset: { group: groupLabel(row) } },
      el("th", { text: groupLabel(row) }),
      el("td", { class: "num", text: s ? s.scored : "—" }),
      el("td", { class: "num", text: s ? s.infrastructure_errors : "—" }),
      el("td", { class: "num mean-ci", text: fmtEstimate(s && s.mean_reward) }),
      el("td", { class: "num pass-ci", text: fmtEstimate(s && s.pass_rate) }),
      ks.map((k) => {
        const p = s && s.pass_at_k.find((x) => x.k === k);
        return el("td", { class: "num pass-at-k", text: p ? fmtNum(p.value) : "—" });
      }),
    );
  });
  const failed = (summary.expectations || []).filter((c) => !c.met);
  return el(
    "section",
    { id: "run-stats" },
    el("h2", { text: "Statistics" }),
    el("div", { class: "scroll" }, el("table", { class: "list stats" }, el("thead", {}, head), el("tbody", {}, body))),
    el(
      "p",
      { class: "muted" },
      "Intervals are 95% t intervals, clustered by task when tasks have several attempts; pass@k is the unbiased estimator. ",
      `${summary.infrastructure_errors} trial(s) with infrastructure errors are left out of every denominator.`,
    ),
    failed.length
      ? el(
          "ul",
          { id: "expectations", class: "error-box" },
          failed.map((c) =>
            el("li", { text: `not met: ${c.selects} ${c.metric} ${c.metric === "error_rate" ? "≤" : "≥"} ${c.threshold} (${c.group || "no group matched"}: ${fmtNum(c.actual)})` }),
          ),
        )
      : null,
  );
}

async function showCompare(query) {
  const a = query.get("a") || "";
  const b = query.get("b") || "";
  crumbs({ text: "runs", href: "#/" }, { text: `compare ${b} against ${a}` });
  const data = await getJson(`/api/compare?${new URLSearchParams({ a, b })}`);
  const head = el(
    "tr",
    {},
    ["group", "A mean", "B mean", "B − A [95% CI]", "shared tasks", "paired B − A [95% CI]", "paired p", "McNemar p", "pass → fail", "fail → pass"].map((h) =>
      el("th", { text: h }),
    ),
  );
  const body = data.groups.map((g) =>
    el(
      "tr",
      { class: "group", dataset: { group: g.group } },
      el("th", { text: g.group }),
      el("td", { class: "num", text: g.a ? fmtNum(g.a.mean) : "—" }),
      el("td", { class: "num", text: g.b ? fmtNum(g.b.mean) : "—" }),
      el("td", { class: "num difference", text: `${fmtSigned(g.difference)}${fmtInterval(g.ci95, fmtSigned)}` }),
      el("td", { class: "num", text: g.shared_tasks }),
      el("td", { class: "num", text: g.paired ? `${fmtSigned(g.paired.mean_difference)}${fmtInterval(g.paired.ci95, fmtSigned)}` : "—" }),
      el("td", { class: "num", text: g.paired ? g.paired.p_value.toFixed(4) : "—" }),
      el("td", { class: "num", text: g.mcnemar_p_value === null ? "—" : g.mcnemar_p_value.toFixed(4) }),
      el("td", { class: "pass-to-fail", text: g.pass_to_fail.join(", ") || "—" }),
      el("td", { class: "fail-to-pass", text: g.fail_to_pass.join(", ") || "—" }),
    ),
  );
  show(
    el("h1", {}, `${b} `, el("span", { class: "muted sub", text: `against ${a}` })),
    el("div", { class: "scroll" }, el("table", { class: "list", id: "compare" }, el("thead", {}, head), el("tbody", {}, body))),
    el("p", { class: "muted" }, `Differences are B − A. B − A interval: ${data.difference_interval}. Paired test: ${data.paired_test}; also ${data.mcnemar_test}.`),
  );
}

// ---------- A run: the matrix ----------

function columnOf(row, stages) {
  const parts = [];
  if (stages > 1) parts.push(row.stage);
  parts.push(row.agent);
  if (row.model) parts.push(row.model);
  if (row.params) parts.push(row.params);
  return parts.join(" · ");
}

function matches(row, filters) {
  return (
    (!filters.stage || row.stage === filters.stage) &&
    (!filters.agent || row.agent === filters.agent) &&
    (!filters.model || (row.model || "") === filters.model) &&
    (!filters.status || row.status === filters.status) &&
    (!filters.error || (row.error_kind || "") === filters.error)
  );
}

function stats(rows) {
  const finished = rows.filter((r) => FINISHED(r.status));
  const passed = finished.filter((r) => (r.reward || 0) >= 1).length;
  const errors = finished.filter((r) => r.error_kind).length;
  // The mean is over trials with a reward, as in summary.json and the closing table.
  const rewarded = finished.filter((r) => r.reward !== null && r.reward !== undefined);
  const sum = rewarded.reduce((acc, r) => acc + r.reward, 0);
  return {
    finished: finished.length,
    planned: rows.length,
    passed,
    errors,
    passRate: finished.length ? passed / finished.length : null,
    mean: rewarded.length ? sum / rewarded.length : null,
  };
}

function cellClass(row) {
  if (row.status === "pending") return "pending";
  if (row.status === "running") return "running";
  if (row.reward === null || row.reward === undefined) return "error";
  return "scored";
}

function cellStyle(row) {
  if (cellClass(row) !== "scored") return null;
  const r = Math.max(0, Math.min(1, row.reward));
  return `background-color: hsl(${Math.round(r * 120)}, 55%, ${r >= 1 ? 38 : 45}%)`;
}

function attemptLink(run, row) {
  const label =
    row.status === "pending" ? "·" : row.status === "running" ? (row.phase || "…") : fmtReward(row.reward);
  const title = [
    `${row.task} · attempt ${row.attempt}`,
    row.status + (row.phase ? ` (${row.phase})` : ""),
    row.reward !== null && row.reward !== undefined ? `reward ${fmtReward(row.reward)}` : null,
    row.error_kind ? `${row.error_kind}: ${row.error || ""}` : null,
  ]
    .filter(Boolean)
    .join("\n");
  return el("a", {
    class: `attempt ${cellClass(row)}`,
    href: trialHref(run, row.key),
    style: cellStyle(row),
    title,
    text: label,
    dataset: { key: row.key, status: row.status, reward: row.reward ?? "" },
  });
}

function filterChoices(rows) {
  const values = {
    stage: rows.map((r) => r.stage),
    agent: rows.map((r) => r.agent),
    model: rows.map((r) => r.model || ""),
    status: rows.map((r) => r.status),
    error: rows.map((r) => r.error_kind || ""),
  };
  return Object.fromEntries(FILTERS.map((name) => [name, [...new Set(values[name])].filter(Boolean).sort()]));
}

function filterBar(rows, filters, onChange) {
  const choices = filterChoices(rows);
  return el(
    "form",
    { class: "filters", id: "filters" },
    FILTERS.map((name) => {
      const options = choices[name];
      const select = el(
        "select",
        { name, onchange: () => onChange(name, select.value) },
        el("option", { value: "", text: `all` }),
        options.map((o) => el("option", { value: o, text: o, selected: filters[name] === o })),
      );
      if (filters[name] && !options.includes(filters[name])) {
        select.append(el("option", { value: filters[name], text: filters[name], selected: true }));
      }
      return el("label", {}, name === "error" ? "error kind" : name, select);
    }),
  );
}

// The matrix shows this many tasks at a time; the pager moves through the rest.
const PAGE_TASKS = 100;

// The rows of `/api/runs/NAME?rows=compact` as objects, as the rows of the full form.
function decodeRows(compact) {
  if (Array.isArray(compact)) return compact;
  const { fields, indexed, strings, rows } = compact;
  const isIndexed = fields.map((f) => indexed.includes(f));
  return rows.map((values) => {
    const row = {};
    for (let i = 0; i < fields.length; i++) {
      const value = values[i];
      row[fields[i]] = isIndexed[i] && value !== null ? strings[value] : value;
    }
    return row;
  });
}

function runQuery(filters, pageNumber) {
  const entries = Object.entries(filters).filter(([, v]) => v);
  if (pageNumber > 1) entries.push(["page", String(pageNumber)]);
  return new URLSearchParams(entries).toString();
}

function pager(pageNumber, pages, taskCount, onPage) {
  const first = (pageNumber - 1) * PAGE_TASKS + 1;
  const last = Math.min(taskCount, pageNumber * PAGE_TASKS);
  const button = (text, target, cls) =>
    el("button", { type: "button", class: cls, disabled: target < 1 || target > pages || target === pageNumber, onclick: () => onPage(target), text });
  return el(
    "div",
    { class: "pager", id: "pager", dataset: { page: pageNumber, pages } },
    button("« first", 1, "first"),
    button("‹ previous", pageNumber - 1, "previous"),
    el("span", { class: "page-of", text: `tasks ${first}–${last} of ${taskCount} · page ${pageNumber} of ${pages}` }),
    button("next ›", pageNumber + 1, "next"),
    button("last »", pages, "last"),
  );
}

function renderRun() {
  if (!page || page.kind !== "run") return;
  const { run, data, filters } = page;
  const shown = data.rows.filter((r) => matches(r, filters));
  const stageCount = new Set(data.rows.map((r) => r.stage)).size;
  // One pass: each row's column, the columns in order, the cells, each column's rows.
  const columnIndex = new Map();
  const byColumn = [];
  const cells = new Map();
  const taskSet = new Set();
  for (const row of shown) {
    const column = columnOf(row, stageCount);
    if (!columnIndex.has(column)) {
      columnIndex.set(column, byColumn.length);
      byColumn.push([]);
    }
    byColumn[columnIndex.get(column)].push(row);
    taskSet.add(row.task);
    const id = `${row.task}\u0000${column}`;
    if (!cells.has(id)) cells.set(id, []);
    cells.get(id).push(row);
  }
  const columns = [...columnIndex.keys()];
  const tasks = [...taskSet].sort();
  const pages = Math.max(1, Math.ceil(tasks.length / PAGE_TASKS));
  page.number = Math.min(Math.max(1, page.number || 1), pages);
  const pageTasks = tasks.slice((page.number - 1) * PAGE_TASKS, page.number * PAGE_TASKS);
  const colStats = byColumn.map(stats);
  const total = stats(shown);

  const head = el("tr", {}, el("th", { text: "task" }), columns.map((c) => el("th", { class: "column", text: c })));
  const body = pageTasks.map((task) =>
    el(
      "tr",
      { dataset: { task } },
      el("th", { class: "task", text: task }),
      columns.map((c) => {
        const rows = (cells.get(`${task}\u0000${c}`) || []).sort((a, b) => a.attempt - b.attempt);
        return el("td", { class: "cell" }, rows.map((row) => attemptLink(run, row)));
      }),
    ),
  );
  const foot = [
    ["pass rate", (s) => fmtPct(s.passRate), "pass-rate"],
    ["mean reward", (s) => (s.mean === null ? "—" : s.mean.toFixed(3)), "mean-reward"],
    ["errors", (s) => String(s.errors), "errors"],
    ["finished", (s) => `${s.finished} / ${s.planned}`, "finished"],
  ].map(([label, value, cls]) =>
    el("tr", { class: cls }, el("th", { text: label }), colStats.map((s) => el("td", { class: "num", text: value(s) }))),
  );

  const summary = el(
    "p",
    { class: "summary", id: "run-summary" },
    `${total.finished} of ${total.planned} trials finished · pass rate ${fmtPct(total.passRate)} · mean reward ${
      total.mean === null ? "—" : total.mean.toFixed(3)
    } · ${total.errors} error(s)`,
  );
  const toPage = (number) => {
    page.number = number;
    history.replaceState(null, "", runHref(run, runQuery(filters, number)));
    renderRun();
  };
  const matrix = shown.length
    ? el("div", { class: "scroll" }, el("table", { class: "matrix", id: "matrix" }, el("thead", {}, head), el("tbody", {}, body), el("tfoot", {}, foot)))
    : el("p", { class: "muted", text: "No trial matches these filters." });
  // The filter bar is rebuilt only when its choices change, so a select keeps its focus.
  const choices = JSON.stringify(filterChoices(data.rows));
  if (!document.getElementById("filters") || page.choices !== choices) {
    page.choices = choices;
    show(
      el("h1", {}, data.name, data.pipeline ? el("span", { class: "muted sub", text: ` pipeline ${data.pipeline}` }) : null),
      filterBar(data.rows, filters, (name, value) => {
        filters[name] = value;
        page.number = 1;
        history.replaceState(null, "", runHref(run, runQuery(filters, 1)));
        renderRun();
      }),
      el("div", { id: "run-body" }),
      el("p", { class: "legend muted" }, "Each square is one attempt, coloured by reward (red 0 → green 1); orange: no reward (error); grey: not run yet; blue: running."),
    );
  }
  document
    .getElementById("run-body")
    .replaceChildren(summary, pages > 1 ? pager(page.number, pages, tasks.length, toPage) : "", matrix, statsTable(data.summary) || "");
}

function scheduleRender(render) {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

async function loadRun(run) {
  const data = await getJson(`/api/runs/${enc(run)}?rows=compact`);
  data.rows = decodeRows(data.rows);
  return data;
}

async function showRun(run, query) {
  crumbs({ text: "runs", href: "#/" }, { text: run });
  const data = await loadRun(run);
  const filters = Object.fromEntries(FILTERS.map((f) => [f, query.get(f) || ""]));
  page = { kind: "run", run, data, filters, number: Number(query.get("page")) || 1 };
  setLive(data.live);
  renderRun();
  if (data.live && data.live !== "finished") {
    // Where each trial's row is, so that a live update does not search them all.
    let places = null;
    const placeOf = (key) => {
      if (!places) places = new Map(data.rows.map((r, i) => [r.key, i]));
      return places.get(key);
    };
    const reload = async () => {
      const fresh = await loadRun(run);
      data.rows = fresh.rows;
      data.summary = fresh.summary;
      places = null;
      setLive(fresh.live);
      scheduleRender(renderRun);
    };
    listen(run, reload, {
      trial: ({ row }) => {
        const i = placeOf(row.key);
        if (i !== undefined) data.rows[i] = row;
        else {
          places.set(row.key, data.rows.length);
          data.rows.push(row);
        }
        scheduleRender(renderRun);
      },
      run: ({ state }) => setLive(state),
      reload: () => route(),
    });
  }
}

// ---------- A trial ----------

function pre(text, props) {
  return el("pre", props || {}, text);
}

function contentNodes(run, base, content) {
  if (content === null || content === undefined) return [];
  if (typeof content === "string") return [pre(content, { class: "text" })];
  if (!Array.isArray(content)) return [pre(JSON.stringify(content, null, 2))];
  return content.map((part) => {
    if (part && part.type === "text") return pre(part.text || "", { class: "text" });
    if (part && part.type === "image") {
      const source = part.source || {};
      const src = source.path ? fileUrl(run, `${base}/${source.path}`) : source.data ? `data:${source.media_type || "image/png"};base64,${source.data}` : null;
      return src ? el("img", { class: "shot", src, alt: source.path || "image", loading: "lazy" }) : pre("[image]");
    }
    return pre(JSON.stringify(part, null, 2));
  });
}

function stepNode(run, base, step) {
  const outputs = new Map(((step.observation && step.observation.results) || []).map((r) => [r.source_call_id, r]));
  const used = new Set();
  const calls = (step.tool_calls || []).map((call) => {
    const result = outputs.get(call.tool_call_id);
    if (result) used.add(call.tool_call_id);
    return el(
      "div",
      { class: "tool-call" },
      el("div", { class: "tool-name", text: call.function_name }),
      pre(JSON.stringify(call.arguments, null, 2), { class: "tool-input" }),
      result ? el("div", { class: "tool-output" }, contentNodes(run, base, result.content)) : null,
    );
  });
  const loose = [...outputs.entries()].filter(([id]) => !used.has(id)).map(([, r]) => el("div", { class: "tool-output" }, contentNodes(run, base, r.content)));
  const m = step.metrics;
  return el(
    "section",
    { class: `step ${step.source}`, dataset: { step: step.step_id } },
    el(
      "header",
      {},
      el("span", { class: "step-id", text: `#${step.step_id}` }),
      el("span", { class: "source", text: step.source }),
      step.model_name ? el("span", { class: "muted", text: step.model_name }) : null,
      m ? el("span", { class: "metrics", text: `${m.prompt_tokens} in · ${m.completion_tokens} out${m.cached_tokens ? ` · ${m.cached_tokens} cached` : ""}${m.cost_usd !== undefined && m.cost_usd !== null ? ` · ${fmtCost(m.cost_usd)}` : ""}` }) : null,
      el("span", { class: "muted time", text: step.timestamp || "" }),
    ),
    step.message ? el("div", { class: "message" }, contentNodes(run, base, step.message)) : null,
    calls,
    loose,
  );
}

function liveStepNode(run, base, step) {
  switch (step.kind) {
    case "turn":
      return el("div", { class: "live-step turn", text: `model reply ${step.turn}` });
    case "text":
      return el("div", { class: "live-step" }, pre(step.text, { class: "text" }));
    case "tool_call":
      return el("div", { class: "live-step tool-call" }, el("div", { class: "tool-name", text: step.name }), pre(JSON.stringify(step.input, null, 2), { class: "tool-input" }));
    case "tool_result":
      return el(
        "div",
        { class: `live-step tool-output${step.is_error ? " failed" : ""}` },
        step.output ? pre(step.output) : null,
        (step.images || []).map((path) => el("img", { class: "shot", src: fileUrl(run, `${base}/${path}`), alt: path })),
      );
    default:
      return pre(JSON.stringify(step));
  }
}

function phasesNode(result) {
  const timings = (result && result.timings) || [];
  if (!timings.length) return el("p", { class: "muted", text: "No phase has finished yet." });
  const total = timings.reduce((a, t) => a + t.seconds, 0) || 1;
  return el(
    "table",
    { class: "list phases", id: "phases" },
    el("thead", {}, el("tr", {}, ["phase", "started", "time", ""].map((h) => el("th", { text: h })))),
    el(
      "tbody",
      {},
      timings.map((t) =>
        el(
          "tr",
          {},
          el("td", { text: t.phase }),
          el("td", { class: "muted", text: t.started_at }),
          el("td", { class: "num", text: fmtSecs(t.seconds) }),
          el("td", { class: "bar-cell" }, el("span", { class: "bar", style: `width: ${Math.max(1, (100 * t.seconds) / total)}%` })),
        ),
      ),
    ),
  );
}

function fileBlock(file, props) {
  return el("div", { class: "file" }, el("div", { class: "file-name", text: file.path + (file.truncated ? " (first 256 KiB)" : "") }), pre(file.text, props));
}

function instructionNode(file, id) {
  return el("details", { class: "instruction", id }, el("summary", { text: "show the instruction" }), pre(file.text));
}

/// A multi-step trial's steps: a line each, then each step's instruction, trajectory and
/// verifier output.
function stepsNode(run, row, steps) {
  const seconds = (s) => ((s.result && s.result.timings) || []).reduce((a, t) => a + t.seconds, 0);
  const gate = (s) => (!s.result || s.result.gate_passed == null ? "—" : s.result.gate_passed ? "passed" : "not reached");
  return el(
    "div",
    { id: "steps" },
    el(
      "table",
      { class: "list" },
      el("thead", {}, el("tr", {}, ["step", "reward", "min_reward", "error", "time"].map((h) => el("th", { text: h })))),
      el(
        "tbody",
        {},
        steps.map((s) =>
          el(
            "tr",
            {},
            el("td", { text: s.name }),
            el("td", { class: "num", text: fmtReward(s.result ? s.result.reward : null) }),
            el("td", { text: gate(s) }),
            el("td", { class: "error-text", text: s.result && s.result.error ? `${s.result.error.kind}: ${s.result.error.message}` : "" }),
            el("td", { class: "num", text: fmtSecs(seconds(s)) }),
          ),
        ),
      ),
    ),
    steps.map((s) => {
      const base = `${row.key}/steps/${s.name}/agent`;
      const trajectory = s.trajectory && Array.isArray(s.trajectory.steps) ? s.trajectory.steps : [];
      return el(
        "section",
        { class: "step", id: `step-${s.name}` },
        el("h3", { text: `Step ${s.name}` }),
        s.instruction ? instructionNode(s.instruction) : null,
        trajectory.length ? trajectory.map((t) => stepNode(run, base, t)) : null,
        s.verifier.map((f) => fileBlock(f)),
        s.agent_files.map((f) => fileBlock(f)),
      );
    }),
  );
}

function renderTrial() {
  if (!page || page.kind !== "trial") return;
  const { run, data } = page;
  const row = data.row;
  const result = data.result;
  const base = `${row.key}/agent`;
  const trajectory = data.trajectory;
  const facts = [
    ["status", el("span", { class: `badge ${cellClass(row)}`, id: "trial-status", text: row.status + (row.phase ? ` (${row.phase})` : "") })],
    ["reward", el("span", { id: "trial-reward", text: fmtReward(row.reward) })],
    row.error_kind ? ["error", el("span", { class: "error-text", text: `${row.error_kind}: ${row.error || ""}` })] : null,
    ["tokens", row.tokens ?? "—"],
    ["cost", fmtCost(row.cost_usd)],
    ["time", fmtSecs(row.seconds)],
    result && result.image ? ["image", result.image] : null,
    result && result.provider ? ["provider", result.provider] : null,
    result && result.container ? [result.provider === "daytona" ? "sandbox" : "container", result.provider === "daytona" ? result.container : result.container.slice(0, 12)] : null,
    result && result.teardown_errors && result.teardown_errors.length ? ["teardown", result.teardown_errors.map((e) => e.message || JSON.stringify(e)).join("; ")] : null,
  ].filter(Boolean);

  const rewards = result && result.rewards ? Object.entries(result.rewards) : [];
  const steps = trajectory && Array.isArray(trajectory.steps) ? trajectory.steps : [];
  const final = trajectory && trajectory.final_metrics;
  show(
    el("h1", { id: "trial-title" }, `${row.task} · ${row.agent}${row.model ? ` · ${row.model}` : ""}`, el("span", { class: "muted sub", text: ` attempt ${row.attempt}${row.params ? ` · ${row.params}` : ""} · stage ${row.stage}` })),
    el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)])),
    data.instruction ? [el("h2", { text: "Instruction" }), instructionNode(data.instruction, "instruction")] : null,
    data.steps && data.steps.length ? [el("h2", { text: "Steps" }), stepsNode(run, row, data.steps)] : null,
    el("h2", { text: "Phases" }),
    phasesNode(result),
    // A multi-step trial's trajectories are its steps', shown with them.
    data.steps && data.steps.length ? null : el("h2", { text: "Trajectory" }),
    data.steps && data.steps.length ? null : el(
      "div",
      { id: "trajectory" },
      steps.length
        ? [
            final ? el("p", { class: "muted", text: `${final.total_steps} steps · ${final.total_prompt_tokens} tokens in · ${final.total_completion_tokens} out · ${fmtCost(final.total_cost_usd)}` }) : null,
            steps.map((s) => stepNode(run, base, s)),
          ]
        : data.live_steps.length
          ? el("div", { id: "live-steps" }, data.live_steps.map((step) => liveStepNode(run, base, step)))
          : el("p", { class: "muted", text: "No trajectory: this agent is not model-driven, or it has not written one yet." }),
    ),
    el("h2", { text: "Verifier" }),
    el(
      "div",
      { id: "verifier" },
      rewards.length ? el("p", {}, rewards.map(([k, v]) => el("span", { class: "reward-chip", text: `${k} = ${fmtReward(v)}` }))) : el("p", { class: "muted", text: "No reward." }),
      data.verifier.map((f) => fileBlock(f)),
    ),
    data.agent_files.length ? [el("h2", { text: "Agent output" }), data.agent_files.map((f) => fileBlock(f))] : null,
    el("h2", { text: "Build log" }),
    data.build_log ? el("details", { id: "build-log" }, el("summary", { text: "show the build log" }), pre(data.build_log.text)) : el("p", { class: "muted", text: "No build log." }),
    el("h2", { text: "Files" }),
    el("ul", { class: "files" }, data.files.map((f) => el("li", {}, el("a", { href: fileUrl(run, `${row.key}/${f}`), target: "_blank", text: f })))),
  );
}

async function loadTrial(run, key) {
  return getJson(`/api/runs/${enc(run)}/trials/${key.split("/").map(enc).join("/")}`);
}

async function showTrial(run, key) {
  crumbs({ text: "runs", href: "#/" }, { text: run, href: runHref(run) }, { text: key.split("/").pop() });
  const data = await loadTrial(run, key);
  page = { kind: "trial", run, key, data };
  renderTrial();
  setLive(data.live);
  if (data.live && data.live !== "finished" && !FINISHED(data.row.status)) {
    const reload = async () => {
      if (!page || page.kind !== "trial") return;
      page.data = await loadTrial(run, key);
      scheduleRender(renderTrial);
    };
    listen(run, reload, {
      trial: async ({ row }) => {
        if (row.key !== key || !page || page.kind !== "trial") return;
        page.data = await loadTrial(run, key);
        scheduleRender(renderTrial);
      },
      step: ({ key: stepKey, step }) => {
        if (stepKey !== key || !page || page.kind !== "trial") return;
        page.data.live_steps.push(step);
        scheduleRender(renderTrial);
      },
      run: ({ state }) => setLive(state),
      reload: () => route(),
    });
  }
}

window.addEventListener("hashchange", route);
route();
