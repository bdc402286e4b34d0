// Tributary's console: plain DOM, no framework, no network but this server.
// Everything a server or a stream says is put on the page as text nodes,
// never as markup: a payload like `<img onerror=...>` shows as those characters.
"use strict";

const TOKEN_KEY = "tributary.token";
const main = () => document.getElementById("main");

// ---- building the page -------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (key === "data") for (const [name, v] of Object.entries(value)) node.dataset[name] = v;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...children) {
  const root = main();
  root.replaceChildren();
  append(root, children);
}

function link(href, text) {
  return el("a", { href }, text);
}

function state(text) {
  return el("span", { class: "state " + String(text || "") }, text || "unknown");
}

function number(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits ?? 0 });
}

function duration(millis) {
  if (millis === null || millis === undefined) return "–";
  if (millis < 1000) return millis + " ms";
  if (millis < 60000) return (millis / 1000).toFixed(1) + " s";
  if (millis < 3600000) return (millis / 60000).toFixed(1) + " min";
  return (millis / 3600000).toFixed(1) + " h";
}

function td(value, cls) {
  return el("td", { class: cls }, value);
}

function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.endsWith("#") ? "num" : undefined }, h.replace(/#$/, ""))))),
    el("tbody", {}, rows),
  );
}

// ---- the API ----------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, options) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const init = { headers, credentials: "omit", cache: "no-store" };
  if (options && options.body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) throw new Unauthorized("the server wants a token");
  if (options && options.raw) {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response;
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch (_) {
    body = { error: text };
  }
  if (!response.ok) {
    const error = new Error((body && body.error) || "HTTP " + response.status);
    error.status = response.status;
    throw error;
  }
  return body;
}

function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
  }
  return parts.length ? "?" + parts.join("&") : "";
}

const enc = encodeURIComponent;

// ---- charts (SVG, drawn here) -------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// Lines through the known points; a gap (null) starts a new line.
function polylines(times, values, x, y) {
  const lines = [];
  let points = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) {
      if (points.length) lines.push(points);
      points = [];
    } else points.push(x(times[i]).toFixed(1) + "," + y(value).toFixed(1));
  });
  if (points.length) lines.push(points);
  return lines.map((line) => svg("polyline", { points: line.length === 1 ? line[0] + " " + line[0] : line.join(" ") }));
}

function chart(title, times, values, format, size) {
  const [width, height] = size || [340, 110];
  const pad = { left: 44, right: 8, top: 8, bottom: 18 };
  const known = values.filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...known);
  const start = times.length ? times[0] : 0;
  const end = times.length ? times[times.length - 1] : 1;
  const x = (t) => pad.left + ((t - start) / Math.max(1, end - start)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
  const last = known.length ? format(known[known.length - 1]) : "–";
  const picture = svg(
    "svg",
    { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title },
    svg("line", { x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom, stroke: "#e3e6ec" }),
    svg("text", { x: 2, y: pad.top + 8 }, format(max)),
    svg("text", { x: 2, y: height - pad.bottom }, "0"),
    svg("text", { x: pad.left, y: height - 4 }, times.length ? new Date(start).toLocaleTimeString() : "no samples yet"),
    svg("text", { x: width - pad.right - 60, y: height - 4 }, times.length ? new Date(end).toLocaleTimeString() : ""),
    ...polylines(times, values, x, y),
  );
  return el("div", { class: "chart" }, el("div", { class: "title" }, title + " · now " + last), picture);
}

function sparkline(times, values) {
  const [width, height] = [120, 24];
  const known = values.filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...known);
  const start = times.length ? times[0] : 0;
  const end = times.length ? times[times.length - 1] : 1;
  const x = (t) => 1 + ((t - start) / Math.max(1, end - start)) * (width - 2);
  const y = (v) => height - 2 - (v / max) * (height - 4);
  return el("span", { class: "spark" }, svg("svg", { width, height, role: "img", "aria-label": "lag, last hour" }, ...polylines(times, values, x, y)));
}

function lastKnown(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

// ---- pages ---------------------------------------------------------------

async function sourcesPage() {
  const { sources } = await api("/api/v1/sources");
  const live = sources.filter((s) => !s.deleted_at);
  const details = await Promise.all(
    live.map(async (s) => {
      const [status, history] = await Promise.all([
        api(`/api/v1/sources/${enc(s.name)}/status`).catch((e) => ({ error: e.message })),
        api(`/api/v1/sources/${enc(s.name)}/history?minutes=60`).catch(() => null),
      ]);
      return { source: s, status, history };
    }),
  );
  const rows = details.map(({ source, status, history }) => {
    const series = history ? history.source_series : { lag_millis: [], rows_per_second: [], rejected_per_second: [] };
    const why = status.state === "failed"
      ? el("div", { class: "error" }, (status.reason ? status.reason + ": " : "") + (status.error || ""), status.retry_at ? el("div", { class: "muted" }, "retry at " + status.retry_at) : null)
      : status.state === "finished" ? el("div", { class: "muted" }, status.finished_because || "") : null;
    return el(
      "tr",
      { data: { source: source.name } },
      td(link(`#/source/${enc(source.name)}`, source.name)),
      td([state(status.state || source.state), why]),
      td(String(source.version), "num"),
      td(el("span", { class: "muted" }, source.stream_arn)),
      td(number(lastKnown(series.rows_per_second), 1), "num"),
      td(number(lastKnown(series.rejected_per_second), 1), "num"),
      td(duration(status.lag_millis), "num"),
      td(status.watermark || "–"),
      td(history ? sparkline(history.times, series.lag_millis) : "–"),
    );
  });
  show(
    el("h1", {}, "Sources"),
    live.length
      ? table(["Source", "State", "Version#", "Stream", "Rows/s#", "Rejected/s#", "Largest lag#", "Watermark", "Lag, last hour"], rows)
      : el("p", { class: "muted" }, "No source is committed yet: `tributary commit FILE`."),
  );
}

async function sourcePage(name) {
  const [source, status, history] = await Promise.all([
    api(`/api/v1/sources/${enc(name)}`),
    api(`/api/v1/sources/${enc(name)}/status`),
    api(`/api/v1/sources/${enc(name)}/history?minutes=360`),
  ]);
  const seconds = (v) => number(v, 1) + "/s";
  const charts = (series, label) =>
    el(
      "div",
      { class: "charts" },
      chart(label + "lag", history.times, series.lag_millis, duration),
      chart(label + "rows/s", history.times, series.rows_per_second, seconds),
      chart(label + "rejected/s", history.times, series.rejected_per_second, seconds),
    );
  const shardCharts = el("div", { id: "shard-charts" });
  const pickShard = (shard) => {
    const series = history.shards[shard];
    shardCharts.replaceChildren(series ? charts(series, shard + " · ") : el("p", { class: "muted" }, "No samples of " + shard + " yet."));
  };
  const clustered = status.shards.some((s) => s.lease !== undefined);
  const shardRows = status.shards.map((s) =>
    el(
      "tr",
      { data: { shard: s.shard_id } },
      td(el("button", { type: "button", class: "linkish", on: { click: () => pickShard(s.shard_id) } }, s.shard_id)),
      td(state(s.state)),
      td(el("span", { class: "muted" }, s.checkpoint ? s.checkpoint.sequence_number : "–")),
      td(duration(s.millis_behind_latest), "num"),
      td(number(s.rows), "num"),
      td(number(s.rejected), "num"),
      td(number(s.filtered), "num"),
      td(number(s.late), "num"),
      clustered ? td(s.lease && s.lease.owner ? [s.lease.owner, el("div", { class: "muted" }, s.lease.owner_address || "")] : "–") : null,
    ),
  );
  const versions = source.versions.map((v) => v.version);
  const pick = (id, selected) =>
    el("select", { id }, versions.map((v) => el("option", { value: v, selected: v === selected }, "version " + v)));
  const older = pick("diff-from", versions.length > 1 ? versions[versions.length - 2] : versions[0]);
  const newer = pick("diff-to", versions[versions.length - 1]);
  const diffOut = el("div", { id: "diff", class: "panel diff" });
  const showDiff = async () => {
    const [a, b] = await Promise.all([
      api(`/api/v1/sources/${enc(name)}/versions/${enc(older.value)}`),
      api(`/api/v1/sources/${enc(name)}/versions/${enc(newer.value)}`),
    ]);
    diffOut.replaceChildren(diffLines(pretty(a.definition), pretty(b.definition)));
  };
  show(
    el("h1", {}, name, " ", state(status.state)),
    status.state === "failed" ? el("p", { class: "error" }, (status.reason || "") + " " + (status.error || ""), status.retry_at ? " · retry at " + status.retry_at : "") : null,
    el(
      "p",
      {},
      "Version ", String(status.version), " · ", number(status.rows), " rows · ", number(status.rejected), " rejected · watermark ",
      status.watermark || "–", " · ", link(`#/source/${enc(name)}/errors`, "Rejected rows (" + number(status.error_log_rows) + ")"),
    ),
    el("h2", {}, "Over time"),
    charts(history.source_series, ""),
    el("h2", {}, "Shards"),
    table(["Shard", "State", "Checkpoint", "Lag#", "Rows#", "Rejected#", "Filtered#", "Late#", clustered ? "Owner" : null].filter(Boolean), shardRows),
    shardCharts,
    el("h2", {}, "Definition (version " + source.version + ")"),
    el("div", { class: "panel" }, el("pre", { id: "definition" }, pretty(source.definition))),
    el("h2", {}, "Versions"),
    table(["Version#", "Committed", "Message"], source.versions.map((v) => el("tr", {}, td(String(v.version), "num"), td(v.committed_at), td(v.message || "")))),
    el("p", {}, "Compare ", older, " with ", newer, " ", el("button", { type: "button", id: "show-diff", on: { click: () => showDiff().catch(failed) } }, "Show diff")),
    diffOut,
  );
  if (status.shards.length) pickShard(status.shards[0].shard_id);
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

// A line diff (longest common subsequence): definitions are short.
function diffLines(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const common = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--) common[i][j] = a[i] === b[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
  const lines = [];
  let [i, j] = [0, 0];
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push(el("div", {}, "  " + a[i]));
      i++, j++;
    } else if (j < b.length && (i === a.length || common[i][j + 1] >= common[i + 1][j])) {
      lines.push(el("div", { class: "add" }, "+ " + b[j++]));
    } else {
      lines.push(el("div", { class: "del" }, "- " + a[i++]));
    }
  }
  return el("pre", {}, lines);
}

// ---- rejected rows ------------------------------------------------------

function filtersFrom(hash) {
  const at = hash.indexOf("?");
  const params = new URLSearchParams(at >= 0 ? hash.slice(at + 1) : "");
  return { reason: params.get("reason") || "", field: params.get("field") || "", shard: params.get("shard") || "", since: params.get("since") || "", until: params.get("until") || "" };
}

async function errorsPage(name, filters) {
  const [summary, page] = await Promise.all([
    api(`/api/v1/sources/${enc(name)}/errors/summary` + query({ ...filters, reason: "" })),
    api(`/api/v1/sources/${enc(name)}/errors` + query({ ...filters, limit: 50 })),
  ]);
  const go = (changes) => {
    location.hash = `#/source/${enc(name)}/errors` + query({ ...filters, ...changes });
  };
  const input = (key, label, placeholder) =>
    el("label", {}, label, el("input", { name: key, value: filters[key], placeholder }));
  const form = el(
    "form",
    { class: "filters", id: "filters", on: { submit: (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      go(Object.fromEntries(["field", "shard", "since", "until"].map((k) => [k, (data.get(k) || "").trim()])));
    } } },
    input("field", "Field", "any"),
    input("shard", "Shard", "any"),
    input("since", "Rejected since", "2024-06-01T00:00:00Z"),
    input("until", "Rejected before", "RFC 3339"),
    el("button", { type: "submit" }, "Filter"),
    el("button", { type: "button", id: "export", on: { click: () => exportRows(name, filters).catch(failed) } }, "Export NDJSON"),
  );
  const chips = el(
    "div",
    { class: "chips", id: "reasons" },
    el("button", { type: "button", class: filters.reason ? "" : "active", on: { click: () => go({ reason: "" }) } }, "All (" + number(summary.total) + ")"),
    summary.by_reason.map((r) =>
      el("button", { type: "button", class: filters.reason === r.reason ? "active" : "", data: { reason: r.reason }, on: { click: () => go({ reason: r.reason }) } }, r.reason + " (" + number(r.rows) + ")"),
    ),
  );
  const body = el("tbody", { id: "rejected-rows" });
  const more = el("button", { type: "button", id: "more", hidden: true }, "Older rows");
  let before = null;
  const add = (answer) => {
    append(body, answer.errors.map(rejectedRow));
    before = answer.next_before;
    more.hidden = before === null || before === undefined;
  };
  more.addEventListener("click", () =>
    api(`/api/v1/sources/${enc(name)}/errors` + query({ ...filters, limit: 50, before })).then(add).catch(failed),
  );
  add(page);
  show(
    el("h1", {}, link(`#/source/${enc(name)}`, name), " · rejected rows"),
    form,
    chips,
    replayPanel(name, filters.reason),
    el("table", {}, el("thead", {}, el("tr", {}, ["Rejected", "Reason", "Field", "Shard / sequence", "Message", "Payload"].map((h) => el("th", {}, h)))), body),
    more,
  );
}

function rejectedRow(row) {
  return el(
    "tr",
    { class: "rejected", data: { id: row.id } },
    td([row.rejected_at, el("div", { class: "muted" }, "version " + row.version)]),
    td(row.reason),
    td(row.field || "–"),
    td([row.shard_id, el("div", { class: "muted" }, row.sequence_number + (row.sub_sequence !== null && row.sub_sequence !== undefined ? "/" + row.sub_sequence : ""))]),
    td(row.message),
    td(payloadView(row), "payload"),
  );
}

function bytesOf(row) {
  if (row.payload_encoding === "base64") return Uint8Array.from(atob(row.payload), (c) => c.charCodeAt(0));
  return new TextEncoder().encode(row.payload);
}

function hex(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const chunk = Array.from(bytes.slice(i, i + 16));
    lines.push(i.toString(16).padStart(6, "0") + "  " + chunk.map((b) => b.toString(16).padStart(2, "0")).join(" "));
  }
  return lines.join("\n");
}

function payloadView(row) {
  const views = {};
  views.text = row.payload_encoding === "utf8" ? row.payload : "(binary: " + row.payload.length + " base64 characters)";
  if (row.payload_encoding === "utf8") {
    try {
      views.json = pretty(JSON.parse(row.payload));
    } catch (_) {
      /* not JSON */
    }
  }
  if (row.avro !== undefined) views.avro = pretty(row.avro);
  else if (row.avro_error) views.avro = "does not decode with the writer schema: " + row.avro_error;
  views.hex = hex(bytesOf(row));
  const shown = el("pre", { class: "payload-text" });
  const buttons = Object.keys(views).map((kind) => el("button", { type: "button", data: { view: kind } }, kind));
  const choose = (kind) => {
    shown.textContent = views[kind];
    for (const button of buttons) button.classList.toggle("active", button.dataset.view === kind);
  };
  buttons.forEach((button) => button.addEventListener("click", () => choose(button.dataset.view)));
  choose(views.avro !== undefined && row.avro !== undefined ? "avro" : views.json !== undefined ? "json" : "text");
  const truncated = row.payload_truncated ? el("div", { class: "muted" }, "kept " + number(bytesOf(row).length) + " of " + number(row.payload_length) + " bytes") : null;
  return [el("div", { class: "views" }, buttons), shown, truncated];
}

async function exportRows(name, filters) {
  const response = await api(`/api/v1/sources/${enc(name)}/errors/export` + query(filters), { raw: true });
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const anchor = el("a", { href: url, download: name + "-rejected.ndjson" });
  document.body.appendChild(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function replayPanel(name, reason) {
  const out = el("div", { id: "replay-result" });
  const run = async (dryRun) => {
    out.replaceChildren(el("p", { class: "muted" }, dryRun ? "Decoding the rejected rows again…" : "Replaying…"));
    const body = { dry_run: dryRun };
    if (reason) body.reason = reason;
    const answer = await api(`/api/v1/sources/${enc(name)}/replay`, { body });
    out.replaceChildren(dryRun ? dryRunView(answer) : replayView(answer));
  };
  const confirmReplay = () => {
    if (window.confirm("Land the rows that now decode in the dataset? Each lands once, however often this runs.")) run(false).catch(failedIn(out));
  };
  return el(
    "div",
    { class: "panel", id: "replay" },
    el("strong", {}, "Fix and replay"),
    el("span", { class: "muted" }, reason ? " (" + reason + " rows)" : " (all rows)"),
    " ",
    el("button", { type: "button", id: "dry-run", on: { click: () => run(true).catch(failedIn(out)) } }, "Dry run with the current version"),
    " ",
    el("button", { type: "button", id: "replay-now", on: { click: confirmReplay } }, "Replay"),
    out,
  );
}

function dryRunView(answer) {
  return el(
    "div",
    { class: "dry-run" },
    el("p", {}, `${number(answer.examined)} rows examined with version ${answer.decoded_with}: `, el("strong", { id: "would-land" }, number(answer.would_land)), " would land, ", number(answer.filtered), " filtered by the rules, ", number(answer.still_rejected), " still rejected, ", number(answer.truncated), " kept only in part."),
    answer.by_reason.map((r) =>
      el(
        "div",
        { class: "panel" },
        el("strong", {}, r.reason), ` · ${number(r.rows)} rows: ${number(r.would_land)} would land, ${number(r.filtered)} filtered, ${number(r.still_rejected)} still rejected`,
        r.examples.map((example) =>
          el(
            "div",
            { class: "side" },
            el("div", {}, el("div", { class: "muted" }, "was: " + example.was.reason + " " + (example.was.field || "")), el("pre", {}, example.was.message), el("pre", {}, example.payload)),
            el("div", {}, el("div", { class: "muted" }, "now: " + example.now.outcome), el("pre", {}, example.now.row ? pretty(example.now.row) : (example.now.reason || "") + " " + (example.now.message || ""))),
          ),
        ),
      ),
    ),
  );
}

function replayView(answer) {
  return el(
    "p",
    { id: "replayed" },
    `Replayed with version ${answer.version}: `, el("strong", {}, number(answer.landed)), " rows landed, ", number(answer.filtered), " filtered by the rules, ", number(answer.still_rejected), " still rejected, ", number(answer.truncated), " kept only in part.",
  );
}

// ---- tables -----------------------------------------------------------------

async function tablesPage() {
  const answer = await api("/api/v1/tables");
  show(
    el("h1", {}, "Tables"),
    el("p", { class: "muted" }, "Warehouse " + answer.warehouse + " · catalog " + answer.catalog),
    answer.tables.length
      ? table(["Table", "Snapshots#", "Rows#", "Files#", "Location"], answer.tables.map((t) =>
          el("tr", {}, td(link(`#/table/${enc(t.name)}`, t.name)), td(number(t.snapshots), "num"), td(number(t.rows), "num"), td(number(t.files), "num"), td(el("span", { class: "muted" }, t.location))),
        ))
      : el("p", { class: "muted" }, "No Iceberg dataset yet."),
  );
}

async function tablePage(name) {
  const t = await api(`/api/v1/tables/${enc(name)}?rows=20`);
  const sample = t.sample || [];
  const columns = (t.schema || []).map((f) => f.name);
  show(
    el("h1", {}, name),
    el("p", { class: "muted" }, `${number(t.rows)} rows in ${number(t.files)} files · ${t.location}`),
    el("h2", {}, "Snapshots"),
    table(["Committed", "Operation", "Rows added#", "Files added#", "Snapshot"], (t.snapshot_history || []).slice().reverse().map((s) =>
      el("tr", {}, td(s.committed_at || "–"), td(s.operation), td(number(s.added_rows), "num"), td(number(s.added_files), "num"), td(el("span", { class: "muted" }, String(s.snapshot_id)))),
    )),
    el("h2", {}, "Schema"),
    table(["Id#", "Field", "Type", "Required"], (t.schema || []).map((f) => el("tr", {}, td(String(f.id), "num"), td(f.name), td(f.type), td(f.required ? "yes" : "no")))),
    el("h2", {}, "First rows"),
    sample.length
      ? table(columns, sample.map((row) => el("tr", {}, columns.map((c) => td(cell(row[c]))))))
      : el("p", { class: "muted" }, "No rows yet."),
  );
}

function cell(value) {
  if (value === null || value === undefined) return "∅";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

async function clusterPage() {
  const answer = await api("/api/v1/cluster");
  const nodes = answer.nodes || [];
  show(
    el("h1", {}, "Cluster " + (answer.cluster || "")),
    table(["Node", "Address", "Shards held#", "Last heartbeat", "Live"], nodes.map((n) =>
      el("tr", {}, td([n.id, n.this_node ? el("span", { class: "muted" }, " (this node)") : null]), td(n.address || "–"), td(number(n.shards_held), "num"), td(n.last_heartbeat || "–"), td(n.live ? "yes" : "no")),
    )),
  );
}

// ---- login and routing -------------------------------------------------------

function loginPage(message) {
  const form = el(
    "form",
    { class: "panel login", id: "login", on: { submit: (event) => {
      event.preventDefault();
      const token = new FormData(event.target).get("token");
      if (token) sessionStorage.setItem(TOKEN_KEY, String(token));
      route();
    } } },
    el("p", {}, message || "This server needs its token."),
    el("label", {}, "Token", el("input", { name: "token", type: "password", autocomplete: "off", required: true })),
    el("button", { type: "submit" }, "Open the console"),
    el("p", { class: "muted" }, "Kept for this tab only, and sent as a header on each call."),
  );
  show(el("h1", {}, "Sign in"), form);
}

function failed(error) {
  if (error instanceof Unauthorized) {
    const hadToken = sessionStorage.getItem(TOKEN_KEY) !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    loginPage(hadToken ? "That token was refused." : undefined);
    return;
  }
  show(el("h1", {}, "Something went wrong"), el("p", { class: "error", id: "failure" }, error.message));
}

function failedIn(node) {
  return (error) => {
    if (error instanceof Unauthorized) return failed(error);
    node.replaceChildren(el("p", { class: "error" }, error.message));
  };
}

async function route() {
  document.getElementById("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  const hash = location.hash || "#/";
  const path = hash.split("?")[0].split("/").map((part) => decodeURIComponent(part));
  try {
    if (path[1] === "source" && path[2] && path[3] === "errors") await errorsPage(path[2], filtersFrom(hash));
    else if (path[1] === "source" && path[2]) await sourcePage(path[2]);
    else if (path[1] === "tables") await tablesPage();
    else if (path[1] === "table" && path[2]) await tablePage(path[2]);
    else if (path[1] === "cluster") await clusterPage();
    else await sourcesPage();
    document.body.dataset.rendered = hash;
    // For scripts/bench-console.sh: when the page had its data on screen.
    performance.mark("tributary-rendered");
  } catch (error) {
    failed(error);
  }
}

async function clusterLink() {
  try {
    await api("/api/v1/cluster");
    document.getElementById("nav-cluster").hidden = false;
  } catch (_) {
    /* a single-process server */
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  window.addEventListener("hashchange", route);
  route().then(clusterLink);
});
