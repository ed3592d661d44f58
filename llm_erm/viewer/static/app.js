// llm-erm view: the page. Plain JS, no build step, no network beyond this server's JSON endpoints.
// Every value from the ledger reaches the page through textContent (never innerHTML): model output is text.
"use strict";

const POLL_MS = 1500;
const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
let current = null;   // {key, render, versionOf, version}
let pollTimer = null;

// -- DOM helpers ------------------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("data-")) el.setAttribute(k, v);
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const enc = encodeURIComponent;
const isNum = (v) => typeof v === "number" && isFinite(v);
const fmt = (v, d = 3) => (isNum(v) ? v.toFixed(d) : "—");
const fmtInt = (v) => (isNum(v) ? Math.round(v).toLocaleString("en") : "—");
const fmtUsd = (v) => (isNum(v) ? "$" + (v < 0.01 && v > 0 ? v.toFixed(4) : v.toFixed(2)) : "unpriced");
const fmtTime = (s) => (s ? String(s).replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00$/, " UTC") : "—");
function fmtCi(mean, low, high, digits = 3) {
  if (!isNum(mean)) return "—";
  return isNum(low) && isNum(high) ? `${mean.toFixed(digits)} ± ${((high - low) / 2).toFixed(digits)}` : mean.toFixed(digits);
}
function accColour(m) {
  if (!isNum(m)) return "#eeeeee";
  const t = Math.max(0, Math.min(1, (m - 0.5) / 0.5));   // 0.5 is chance on balanced splits
  return `hsl(${Math.round(t * 120)}, 62%, ${Math.round(80 - 8 * t)}%)`;
}
function stateBadge(state) { return h("span", {class: `badge state-${state}`, "data-state": state, text: state}); }
function statusClass(s) { return s === "ok" ? "status-ok" : "status-bad"; }

async function api(path) {
  const response = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  let body;
  try { body = await response.json(); } catch (e) { body = {error: `${response.status} ${response.statusText}`}; }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// -- routes: #/  #/run/ID  #/run/ID/cell/LABEL/TARGET/L  #/run/ID/attempt/LABEL/TARGET/L/T/A  #/compare/B/C -----
const runHref = (id) => `#/run/${enc(id)}`;
const cellHref = (id, label, target, length) => `#/run/${enc(id)}/cell/${enc(label)}/${enc(target)}/${length}`;
const attemptHref = (id, label, target, length, trial, attempt) =>
  `#/run/${enc(id)}/attempt/${enc(label)}/${enc(target)}/${length}/${trial}/${attempt}`;
const compareHref = (b, c) => `#/compare/${enc(b)}/${enc(c)}`;

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "").map(decodeURIComponent);
  if (parts[0] === "run" && parts.length === 2) return show(`run:${parts[1]}`, parts[1], () => viewRun(parts[1]));
  if (parts[0] === "run" && parts[2] === "cell" && parts.length === 6)
    return show(location.hash, parts[1], () => viewCell(parts[1], parts[3], parts[4], +parts[5]));
  if (parts[0] === "run" && parts[2] === "attempt" && parts.length === 8)
    return show(location.hash, parts[1], () => viewAttempt(parts[1], parts[3], parts[4], +parts[5], +parts[6], +parts[7]));
  if (parts[0] === "compare" && parts.length === 3) return show(location.hash, null, () => viewCompare(parts[1], parts[2]));
  return show("runs", null, viewRuns);
}

// Render a view now, then poll the cheap version endpoint and redraw in place when files change.
function show(key, runId, render) {
  const fresh = !current || current.key !== key;
  current = {key, render, versionUrl: runId ? `/api/version?run=${enc(runId)}` : "/api/version", version: null};
  if (fresh) window.scrollTo(0, 0);
  redraw(fresh);
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, POLL_MS);
}

async function redraw(fresh) {
  const mine = current;
  const started = performance.now();
  try {
    const version = (await api(mine.versionUrl)).version;
    const content = await mine.render();
    if (current !== mine) return;   // the user moved on meanwhile
    const open = fresh ? new Set() : openDetails();
    const scroll = window.scrollY;
    main.replaceChildren(...[content].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false));
    restoreDetails(open);
    if (!fresh) window.scrollTo(0, scroll);
    mine.version = version;
    document.body.dataset.ready = "1";
    document.body.dataset.renders = String(+(document.body.dataset.renders || 0) + 1);
    document.body.dataset.renderMs = String(Math.round(performance.now() - started));
    live.className = "on";
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (current !== mine) return;
    main.replaceChildren(h("p", {class: "error", text: e.message}));
    document.body.dataset.ready = "1";
  }
}

async function poll() {
  const mine = current;
  try {
    const version = (await api(mine.versionUrl)).version;
    if (current === mine && mine.version !== null && version !== mine.version) await redraw(false);
  } catch (e) {
    live.className = "";
    live.textContent = `not updating: ${e.message}`;
  }
  if (current === mine) pollTimer = setTimeout(poll, POLL_MS);
}

function openDetails() {
  return new Set([...main.querySelectorAll("details[data-key]")].filter((d) => d.open).map((d) => d.dataset.key));
}
function restoreDetails(open) {
  for (const d of main.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
}
function setCrumbs(...items) {
  const out = [h("a", {href: "#/", text: "runs"})];
  for (const [text, href] of items) out.push(h("span", {class: "sep", text: "›"}), href ? h("a", {href, text}) : h("span", {text}));
  crumbs.replaceChildren(...out);
}
function facts(rows) {
  return h("table", {class: "facts"}, rows.filter((r) => r && r[1] !== null && r[1] !== undefined && r[1] !== "")
    .map(([k, v]) => h("tr", {}, h("th", {text: k}), h("td", {}, v instanceof Node ? v : String(v)))));
}
function safeLink(url, text) {
  return /^https?:\/\//.test(url || "") ? h("a", {href: url, target: "_blank", rel: "noopener noreferrer", text}) : null;
}

// -- the runs -----------------------------------------------------------------------------------------------
async function viewRuns() {
  setCrumbs();
  const data = await api("/api/runs");
  document.title = "llm-erm view: runs";
  const runs = data.runs;
  const body = runs.map((r) => h("tr", {"data-run": r.run_id},
    h("td", {}, h("a", {href: runHref(r.run_id), class: "run-link", text: r.run_id})),
    h("td", {class: "text", title: r.state_detail || ""}, stateBadge(r.state)),
    h("td", {class: "text", text: (r.methods || []).join(", ") || "—"}),
    h("td", {text: r.cells_planned ? `${r.cells}/${r.cells_planned}` : String(r.cells)}),
    h("td", {text: fmtInt(r.trials)}), h("td", {text: fmtInt(r.attempts)}),
    h("td", {text: fmtUsd(r.cost_usd) + (r.unpriced ? ` (+${r.unpriced} unpriced)` : "")}),
    h("td", {class: "text", text: fmtTime(r.created_at)}), h("td", {class: "text", text: fmtTime(r.updated_at)}),
    h("td", {class: "text"}, r.analysed ? h("a", {href: `/runs/${enc(r.run_id)}/report/report.html`, text: "report"}) : "—",
      r.prefect_url ? [" · ", safeLink(r.prefect_url, "Prefect")] : null)));
  const pick = (name, chosen) => h("select", {name, id: name},
    runs.map((r, i) => h("option", {value: r.run_id, selected: i === chosen, text: r.run_id})));
  const form = h("form", {class: "compare"}, "Compare ", pick("baseline", Math.max(0, runs.length - 2)), " (baseline) with ",
    pick("candidate", runs.length - 1), " ", h("button", {type: "submit", text: "compare"}));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = compareHref(form.baseline.value, form.candidate.value);
  });
  return [
    h("h1", {text: "Runs"}), h("p", {class: "muted", text: `under ${data.results_dir}`}),
    runs.length ? h("div", {class: "scroll"}, h("table", {id: "runs"},
      h("thead", {}, h("tr", {}, ["run", "state", "methods", "cells", "trials", "attempts", "cost", "created", "updated",
        "links"].map((c) => h("th", {text: c})))), h("tbody", {}, body)))
      : h("p", {text: "No runs yet: start one with `llm-erm run`."}),
    runs.length > 1 ? form : null,
  ];
}

// -- a run: one grid per method -----------------------------------------------------------------------------
const FLAG_TEXT = {   // short, font-safe labels; the title says it in words
  limit_test: ["limit", "selected candidate(s) stopped by a time or memory limit on test (its test score counts those inputs wrong)"],
  limit_other: ["limit?", "selected candidate(s) stopped by a time or memory limit on train/validation"],
  truncated: ["trunc", "answer(s) cut off by an output limit (truncated)"],
  unpriced: ["$?", "answered call(s) without a price (unknown model): left out of the cost"],
  failed_calls: ["failed", "call(s) that failed after their retries (a re-run makes them again)"],
  errors: ["error", "trial(s) of this method that ended in an error"],
  skipped_budget: ["budget", "attempt(s) skipped: the budget was spent"],
  leaks: ["LEAK", "leakage finding(s) in this cell (see the report)"],
  leak_warnings: ["leak?", "leakage warning(s) (a hard-coded training input, repeated test inputs)"],
};
function flagBadges(flags) {
  return Object.entries(FLAG_TEXT).filter(([k]) => flags[k] > 0).map(([k, [sym, what]]) =>
    h("span", {class: "flag", "data-flag": k, title: `${flags[k]} ${what}`, text: `${sym} ${flags[k]}`}));
}

async function viewRun(id) {
  const run = await api(`/api/run/${enc(id)}`);
  setCrumbs([id, null]);
  document.title = `llm-erm view: ${id}`;
  const leak = run.leakage;
  const verdict = leak.status === "not analysed"
    ? h("span", {class: "verdict-not-analysed", "data-leakage": "not analysed"}, "not analysed ",
        h("span", {class: "muted", text: `(llm-erm analyze --run-id ${id})`}))
    : h("span", {class: `verdict-${leak.status}`, "data-leakage": leak.status,
        text: leak.status === "passed" ? `passed (${leak.warnings} warning(s))` : `FAILED: ${leak.leaks} leakage finding(s)`},
        leak.stale ? h("span", {class: "muted", text: " — analysed before the latest trials"}) : null);
  const t = run.totals || {};
  const totals = [
    ["limit_test", "selected candidates stopped by a time or memory limit on test"],
    ["limit_other", "selected candidates stopped by a limit on train or validation"],
    ["truncated", "truncated answers"], ["unpriced", "unpriced calls"], ["failed_calls", "failed calls"],
    ["errors", "baseline trials that ended in an error"], ["skipped_budget", "attempts skipped for budget"],
    ["reused", "answers reused from the journal (paid before a resume)"],
  ];
  const raised = totals.filter(([k]) => t[k] > 0).map(([k, text]) =>
    h("li", {"data-total": k}, h("span", {class: "n", text: fmtInt(t[k])}), ` ${text}`));
  const clear = totals.filter(([k]) => !(t[k] > 0)).map(([, text]) => text);
  const sections = run.methods.map((m) => methodGrid(run, m));
  return [
    h("h1", {}, `Run ${id} `, stateBadge(run.state)),
    facts([
      ["state", run.state_detail], ["created", fmtTime(run.created_at)], ["updated", fmtTime(run.updated_at)],
      ["cost", fmtUsd(run.cost_usd) + (run.unpriced ? ` (+${run.unpriced} unpriced calls)` : "")],
      ["cells / trials / rows", `${run.cells} / ${run.trials} / ${run.attempts}`],
      ["methods", run.methods.map((m) => m.label).join(", ")],
      ["leakage check", verdict],
      ...Object.entries(run.facts || {}).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v]),
      ["report", run.report_url ? h("a", {href: run.report_url, text: "report.html"}) : null],
      ["Prefect", run.prefect_url ? safeLink(run.prefect_url, "flow run in the Prefect UI") : null],
    ]),
    h("h2", {text: "Flags"}), raised.length ? h("ul", {class: "totals"}, raised) : null,
    clear.length ? h("p", {class: "muted", text: `None: ${clear.join("; ")}.`}) : null,
    h("p", {class: "legend"}, "Cells: mean selected test accuracy over scored trials (± 95% CI, Student t), scored/all trials. ",
      "Colour: ", h("span", {class: "swatch", style: {background: accColour(0.5)}}), " 0.5 (chance) → ",
      h("span", {class: "swatch", style: {background: accColour(0.75)}}), " 0.75 → ",
      h("span", {class: "swatch", style: {background: accColour(1)}}), " 1.0; ",
      "Flags: ", Object.values(FLAG_TEXT).map(([sym, what]) => [h("span", {class: "flag", text: sym}), ` ${what.split(" (")[0]}; `])),
    sections.length ? h("div", {class: "methods"}, sections) : h("p", {text: "No finished trial yet; this page updates when one lands."}),
  ];
}

function methodGrid(run, m) {
  const byKey = new Map(m.cells.map((c) => [`${c.target}|${c.length}`, c]));
  const lengths = run.lengths.filter((L) => m.cells.some((c) => c.length === L));
  const targets = run.targets.filter((tg) => m.cells.some((c) => c.target === tg));
  const rows = targets.map((tg) => h("tr", {},
    h("th", {class: "target", title: run.target_names[tg] || "", text: tg},
      run.target_names[tg] && run.target_names[tg] !== tg ? h("span", {class: "muted", text: ` ${run.target_names[tg]}`}) : null),
    lengths.map((L) => {
      const c = byKey.get(`${tg}|${L}`);
      if (!c) return h("td", {class: "none", title: "not in this run"});
      const td = h("td", {},
        h("a", {class: "cell", href: cellHref(run.run_id, m.label, tg, L), "data-label": m.label, "data-target": tg,
                "data-length": String(L), title: `${tg} L${L}: open its trials`},
          h("span", {class: "acc", text: fmt(c.test_mean)}),
          h("span", {class: "sub", text: (isNum(c.test_ci_low) ? `± ${((c.test_ci_high - c.test_ci_low) / 2).toFixed(3)} · ` : "") +
            `${c.trials_scored}/${c.trials} trials`}),
          h("span", {class: "flags"}, flagBadges(c.flags))));
      td.style.background = accColour(c.test_mean);
      return td;
    })));
  const nTrain = m.n_train.length ? ` · n_train ${m.n_train.join(", ")}` : "";
  return h("section", {class: "method", "data-label": m.label},
    h("h2", {}, m.label, h("span", {class: "muted", text: ` (${m.method}${nTrain})`})),
    h("div", {class: "scroll"}, h("table", {class: "grid"},
      h("thead", {}, h("tr", {}, h("th", {text: "target \\ length"}), lengths.map((L) => h("th", {text: `L${L}`})))),
      h("tbody", {}, rows))));
}

// -- a cell: its trials and their attempts --------------------------------------------------------------------
async function viewCell(id, label, target, length) {
  const c = await api(`/api/run/${enc(id)}/cell?label=${enc(label)}&target=${enc(target)}&length=${length}`);
  setCrumbs([id, runHref(id)], [`${label} · ${target} L${length}`, null]);
  document.title = `llm-erm view: ${target} L${length} (${label})`;
  const s = c.summary;
  const groups = c.groups.length ? h("div", {class: "scroll"}, h("table", {id: "groups"},
    h("thead", {}, h("tr", {}, ["group", "attempts", "which (trial·attempt)", "val", "test"].map((x) => h("th", {text: x})))),
    h("tbody", {}, c.groups.map((g) => h("tr", {"data-group": g.group},
      h("td", {}, h("span", {class: "group", text: g.group})), h("td", {text: g.size}),
      h("td", {class: "text"}, g.members.map(([tr, at], i) => [i ? ", " : "",
        h("a", {href: attemptHref(id, label, target, length, tr, at), text: `t${tr}·a${at}`})])),
      h("td", {text: fmt(g.val_acc)}), h("td", {text: fmt(g.test_acc)}))))))
    : h("p", {class: "muted", text: c.search ? "No two attempts share a behaviour signature." : "One result per trial (no attempts to group)."});
  const findings = c.leakage_findings.length ? h("ul", {}, c.leakage_findings.map((f) =>
    h("li", {class: f.severity === "leak" ? "status-bad" : ""}, `${f.severity}: ${f.kind} — ${f.detail}`))) : null;
  const trials = c.trials.map((tr) => h("section", {class: "trial", "data-trial": String(tr.trial)},
    h("h3", {}, `Trial ${tr.trial}`, h("span", {class: "muted", text:
      tr.selected_attempt ? ` — selected attempt ${tr.selected_attempt}: test ${fmt(tr.selected_test_acc)}` +
        (isNum(tr.selected_val_acc) ? `, validation ${fmt(tr.selected_val_acc)}` : "") +
        (tr.stopped_early ? " (stopped early)" : "") : " — no scored candidate"})),
    h("div", {class: "scroll"}, h("table", {class: "attempts"},
      h("thead", {}, h("tr", {}, ["attempt", "status", "selected", "val", "test", "train", "group", "tokens in/out/reasoning/cached",
        "cost", "latency", "flags", "first error"].map((x) => h("th", {text: x})))),
      h("tbody", {}, tr.attempts.map((a) => h("tr", {class: a.selected_by_rule ? "selected" : "", "data-attempt": String(a.attempt)},
        h("td", {}, h("a", {class: "attempt-link", href: attemptHref(id, label, target, length, tr.trial, a.attempt), text: `#${a.attempt}`})),
        h("td", {class: `text ${statusClass(a.status)}`, text: a.status}),
        h("td", {text: a.selected_by_rule ? "★" : ""}),
        h("td", {text: fmt(a.val_acc)}), h("td", {text: fmt(a.test_acc)}), h("td", {text: fmt(a.train_acc)}),
        h("td", {}, a.group ? h("span", {class: "group", text: a.group}) : ""),
        h("td", {text: [a.prompt_tokens, a.completion_tokens, a.reasoning_tokens, a.cached_tokens].map(fmtInt).join(" / ")}),
        h("td", {text: a.cost_usd === null && a.status === "skipped_budget" ? "—" : fmtUsd(a.cost_usd)}),
        h("td", {text: isNum(a.latency_s) ? `${a.latency_s.toFixed(1)} s` : "—"}),
        h("td", {class: "text"}, attemptFlags(a)),
        h("td", {class: "err", text: a.first_error || ""}))))))));
  return [
    h("h1", {}, `${target} L${length} · ${label}`, c.target_name ? h("span", {class: "muted", text: ` ${c.target_name}`}) : null),
    facts([
      ["selected test accuracy", `${fmtCi(s.test_mean, s.test_ci_low, s.test_ci_high)} (std ${fmt(s.test_std)}) over ` +
        `${s.trials_scored} scored of ${s.trials} trial(s)`],
      ["method", c.method], ["samples trained on", isNum(s.n_train) ? fmtInt(s.n_train) : null],
      ["leakage", c.analysed ? (c.leakage_findings.length ? `${c.leakage_findings.length} finding(s) below` : "no finding in this cell") : "not analysed"],
    ]),
    findings,
    h("h2", {text: "Behaviour groups"}),
    c.groups.length ? h("p", {class: "muted", text: "Attempts in one group made the same predictions on every validation input."}) : null,
    groups,
    h("h2", {text: "Trials"}), trials,
  ];
}

function attemptFlags(a) {
  const out = [];
  if (a.truncated) out.push(h("span", {class: "flag", title: `cut off (finish reason ${a.finish_reason || "?"})`, text: "truncated"}));
  if (a.limit_split) out.push(h("span", {class: "flag", title: "time or memory limit", text: `limit on ${a.limit_split}`}));
  if (a.reused_answer) out.push(h("span", {class: "flag info", title: "answer from the journal (paid before a resume)", text: "reused"}));
  if (a.stopped_early) out.push(h("span", {class: "flag info", title: "the trial stopped here (validation 1.0)", text: "stop"}));
  return out;
}

// -- one attempt --------------------------------------------------------------------------------------------
async function viewAttempt(id, label, target, length, trial, attempt) {
  const d = await api(`/api/run/${enc(id)}/attempt?label=${enc(label)}&target=${enc(target)}&length=${length}` +
    `&trial=${trial}&attempt=${attempt}`);
  const r = d.row;
  setCrumbs([id, runHref(id)], [`${label} · ${target} L${length}`, cellHref(id, label, target, length)],
    [`trial ${trial} · attempt ${attempt}`, null]);
  document.title = `llm-erm view: ${target} L${length} t${trial} a${attempt}`;
  const nav = h("p", {class: "nav-attempts"},
    d.previous ? h("a", {href: attemptHref(id, label, target, length, ...d.previous), text: `← t${d.previous[0]}·a${d.previous[1]}`}) : null,
    h("a", {href: cellHref(id, label, target, length), text: "all trials of this cell"}),
    d.next ? h("a", {href: attemptHref(id, label, target, length, ...d.next), text: `t${d.next[0]}·a${d.next[1]} →`}) : null);
  const code = r.code ? h("pre", {class: "code"}, h("code", {id: "code"}, highlightPython(r.code))) :
    h("p", {class: "muted", id: "code-missing", text: r.text ? "No code could be extracted from the response." : "No code (this method writes none)."});
  const extra = r.method_extra ? methodExtra(r.method_extra) : null;
  return [
    h("h1", {}, `${target} L${length} · ${label} · trial ${trial} · attempt ${attempt} `,
      h("span", {class: `badge ${r.status === "ok" ? "state-complete" : "state-failed"}`, text: r.status}),
      d.selected_by_rule ? h("span", {class: "badge state-running", text: "selected"}) : null),
    nav,
    facts([
      ["accuracy train / validation / test", `${fmt(r.train_acc)} / ${fmt(r.val_acc)} / ${fmt(r.test_acc)}`],
      ["errors on validation / test", r.val_errors !== null || r.test_errors !== null ? `${fmtInt(r.val_errors)} / ${fmtInt(r.test_errors)}` : null],
      ["model (asked / answered)", r.model ? `${r.model} / ${r.response_model || "—"}` : null],
      ["proposer", r.proposer], ["method", `${r.method} (${r.method_label})`],
      ["samples trained on", isNum(r.n_train) ? fmtInt(r.n_train) : null],
      ["tokens in / out / reasoning / cached", [r.prompt_tokens, r.completion_tokens, r.reasoning_tokens, r.cached_tokens].map(fmtInt).join(" / ")],
      ["cost", r.status === "skipped_budget" ? "not called" : fmtUsd(r.cost_usd)],
      ["latency", isNum(r.latency_s) ? `${r.latency_s.toFixed(2)} s` : null],
      ["finish reason", r.finish_reason], ["truncated", r.truncated ? "yes — the answer was cut off" : null],
      ["time/memory limit hit on", r.limit_split],
      ["answer reused from the journal", r.reused_answer ? "yes" : null],
      ["behaviour signature", r.signature ? `${r.signature}${d.group ? ` (group ${d.group})` : ""}` : null],
      ["code size", isNum(r.code_lines) ? `${r.code_lines} lines, ${fmtInt(r.ast_nodes)} AST nodes, ${fmtInt(r.branches)} branches` : null],
      ["sandbox", r.sandbox], ["seed", r.seed], ["selection rule", r.selection_rule],
      ["recorded as selected", r.selected === null ? null : (r.selected ? "yes" : "no")],
      ["created", fmtTime(r.created_at)], ["response id", r.response_id], ["ledger file", d.file],
    ]),
    r.first_error || r.propose_error ? [h("h2", {text: "First error"}), h("pre", {class: "wrap", id: "first-error", text: r.first_error || r.propose_error})] : null,
    h("h2", {text: "Extracted code"}), code,
    h("h2", {text: "Raw response"}),
    r.text ? h("pre", {class: "wrap", id: "response", text: r.text}) : h("p", {class: "muted", text: "No response text."}),
    h("details", {"data-key": "prompt"}, h("summary", {text: r.prompt ? `Prompt (${fmtInt(r.prompt.length)} characters, ${r.prompt_variant || "default"} variant)` : "Prompt (none recorded)"}),
      h("pre", {class: "wrap", id: "prompt", text: r.prompt || ""})),
    extra,
    r.proposal_extra ? h("details", {"data-key": "proposal-extra"}, h("summary", {text: "What the proposer reported"}),
      h("pre", {class: "wrap", text: JSON.stringify(r.proposal_extra, null, 2)})) : null,
    r.request_params ? h("details", {"data-key": "request"}, h("summary", {text: "Request parameters"}),
      h("pre", {class: "wrap", text: JSON.stringify(r.request_params, null, 2)})) : null,
  ];
}

function methodExtra(extra) {
  if (typeof extra !== "object") return [h("h2", {text: "Method details"}), h("pre", {class: "wrap", text: String(extra)})];
  const {curve, settings, ...rest} = extra;
  const scalars = Object.entries(rest).filter(([, v]) => v === null || typeof v !== "object");
  const nested = Object.entries(rest).filter(([, v]) => v !== null && typeof v === "object");
  const out = [h("h2", {text: "Method details"}), facts(scalars.map(([k, v]) => [k.replaceAll("_", " "), isNum(v) && !Number.isInteger(v) ? v.toFixed(4) : v]))];
  if (Array.isArray(curve) && curve.length) {
    const cols = [...new Set(curve.flatMap((p) => Object.keys(p)))];
    out.push(h("h3", {text: `Training curve (${curve.length} points)`}), h("div", {class: "scroll"}, h("table", {id: "curve"},
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {text: c})))),
      h("tbody", {}, curve.map((p) => h("tr", {}, cols.map((c) => h("td", {text: isNum(p[c]) && !Number.isInteger(p[c]) ? p[c].toFixed(4) : (p[c] ?? "—")}))))))));
  }
  if (settings) out.push(h("details", {"data-key": "settings"}, h("summary", {text: "Settings"}), h("pre", {class: "wrap", text: JSON.stringify(settings, null, 2)})));
  for (const [k, v] of nested) out.push(h("details", {"data-key": `extra-${k}`}, h("summary", {text: k}), h("pre", {class: "wrap", text: JSON.stringify(v, null, 2)})));
  return out;
}

// -- a small Python highlighter: comments, strings, numbers, keywords, builtins, def/class names ---------------
const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else except finally for " +
  "from global if import in is lambda nonlocal not or pass raise return try while with yield match case").split(" "));
const BUILTINS = new Set(("abs all any bin bool bytes chr dict divmod enumerate filter float frozenset getattr hasattr hash hex int " +
  "isinstance iter len list map max min next oct ord pow print range repr reversed round set slice sorted str sum tuple type zip").split(" "));
const TOKEN = new RegExp([
  /(#[^\n]*)/.source,
  /((?:[rRbBuUfF]{1,2})?(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))/.source,
  /(\b(?:0[xXoObB][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?|\.\d+(?:[eE][+-]?\d+)?)\b)/.source,
  /(@[A-Za-z_][\w.]*)/.source,
  /([A-Za-z_][A-Za-z0-9_]*)/.source,
].join("|"), "g");
function highlightPython(code) {
  const out = document.createDocumentFragment();
  let last = 0, afterDef = false, m;
  TOKEN.lastIndex = 0;
  while ((m = TOKEN.exec(code)) !== null) {
    if (m.index > last) out.append(code.slice(last, m.index));
    let cls = null;
    if (m[1] !== undefined) cls = "hl-com";
    else if (m[2] !== undefined) cls = "hl-str";
    else if (m[3] !== undefined) cls = "hl-num";
    else if (m[4] !== undefined) cls = "hl-dec";
    else if (afterDef) cls = "hl-def";
    else if (KEYWORDS.has(m[5])) cls = "hl-kw";
    else if (BUILTINS.has(m[5])) cls = "hl-bi";
    afterDef = m[5] === "def" || m[5] === "class";
    out.append(cls ? h("span", {class: cls, text: m[0]}) : m[0]);
    last = m.index + m[0].length;
    if (m[0].length === 0) TOKEN.lastIndex++;
  }
  if (last < code.length) out.append(code.slice(last));
  return out;
}

// -- two runs side by side ----------------------------------------------------------------------------------
async function viewCompare(baseline, candidate) {
  setCrumbs([`compare ${baseline} → ${candidate}`, null]);
  document.title = `llm-erm view: ${candidate} vs ${baseline}`;
  const d = await api(`/api/compare?baseline=${enc(baseline)}&candidate=${enc(candidate)}`);
  const sections = d.methods.map((m) => h("section", {class: "compare-method", "data-label": m.label},
    h("h2", {}, m.label, h("span", {class: "muted", text: ` — ${m.cells.length} cell(s) compared, ${m.regressions} regression(s)`})),
    m.cells.length ? h("div", {class: "scroll"}, h("table", {class: "comparison"},
      h("thead", {}, h("tr", {}, ["target", "L", "baseline test", "candidate test", "Δ test", "noise threshold",
        "ok share (baseline → candidate)", "same dataset", "verdict"].map((x) => h("th", {text: x})))),
      h("tbody", {}, m.cells.map((c) => h("tr", {class: c.regression ? "regression" : "", "data-target": c.target,
        "data-length": String(c.length), "data-regression": c.regression ? "1" : "0"},
        h("td", {}, h("a", {href: cellHref(candidate, m.label, c.target, c.length), text: c.target})),
        h("td", {text: c.length}), h("td", {text: fmt(c.baseline_test_mean)}), h("td", {text: fmt(c.candidate_test_mean)}),
        h("td", {text: isNum(c.test_delta) ? (c.test_delta > 0 ? "+" : "") + c.test_delta.toFixed(3) : "—"}),
        h("td", {text: fmt(c.test_threshold)}),
        h("td", {text: `${fmt(c.baseline_ok_share, 2)} → ${fmt(c.candidate_ok_share, 2)}`}),
        h("td", {text: c.same_dataset ? "yes" : "no"}),
        h("td", {class: "text"}, c.regression
          ? [h("span", {class: "regression-mark", text: "REGRESSION"}), c.regressions.map((r) => h("div", {text: `${r.kind}: ${r.detail}`}))]
          : h("span", {class: "status-ok", text: "ok"})))))))
      : h("p", {class: "muted", text: "No cell in common."}),
    m.only_in_baseline.length ? h("p", {text: "Only in the baseline: " + m.only_in_baseline.map(([t, L]) => `${t} L${L}`).join(", ")}) : null,
    m.only_in_candidate.length ? h("p", {text: "Only in the candidate: " + m.only_in_candidate.map(([t, L]) => `${t} L${L}`).join(", ")}) : null));
  return [
    h("h1", {}, "Compare ", h("a", {href: runHref(candidate), text: candidate}), " with baseline ", h("a", {href: runHref(baseline), text: baseline})),
    h("p", {id: "compare-verdict", class: d.regressions ? "status-bad" : "status-ok",
      text: `${d.regressions} regression(s) over ${d.methods.length} method(s).`}),
    h("p", {class: "muted", text: "A cell regresses when its mean selected test accuracy drops by more than max(2 × combined standard error, 0.02), " +
      "its share of ok attempts drops by more than max(2 × combined binomial standard error, 0.10), or it loses every scored trial (llm-erm compare)."}),
    d.labels_only_in_baseline.length ? h("p", {text: `Methods only in the baseline: ${d.labels_only_in_baseline.join(", ")}`}) : null,
    d.labels_only_in_candidate.length ? h("p", {text: `Methods only in the candidate: ${d.labels_only_in_candidate.join(", ")}`}) : null,
    sections,
  ];
}

window.addEventListener("hashchange", route);
route();
