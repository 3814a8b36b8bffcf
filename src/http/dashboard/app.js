// The Stillwater dashboard: one page over the API under /api/v1. It signs in
// with an API token (the server answers with an HttpOnly session cookie and a
// CSRF token, kept here in memory only), then shows what the person's role
// needs: open alerts, households, devices, thresholds, absences, registering
// a meter. Every text comes from the data through textContent, never as HTML.
"use strict";

const TEXT = {
  zh: {
    sign_in: "登录", token: "访问令牌", token_hint: "由管理员用 stillwater tokens add 生成。",
    sign_out: "退出", alerts: "告警", households: "住户", devices: "设备", thresholds: "阈值",
    absences: "外出登记", register: "登记水表", open_alerts: "待处理告警", no_alerts: "没有待处理的告警",
    acknowledge: "确认", resolve: "解除", close: "结案", disposition: "处置结果", note: "备注",
    since: "开始", opened: "告警时间", new_alert: "新告警", household: "住户详情", contacts: "联系人",
    water_use: "用水量（升）", hourly: "最近 7 天（每小时）", daily: "最近 90 天（每天）",
    routine: "日常规律", wake: "通常起床", bed: "通常就寝", not_learned: "尚未学会（需要约两周数据）",
    meter_health: "水表状态", last_reading: "最近读数", battery: "电量", missing: "丢失读数",
    rejected: "被拒消息", search: "搜索（表号、姓名、地址）", offline: "离线", low_battery: "电量低",
    losing: "丢失读数", unregistered: "未登记水表", never: "从未", save: "保存", preview: "预览（近 30 天回放）",
    category: "类别", meter: "水表号", current: "当前", tried: "新值", alerts_count: "告警数",
    contact_texts: "发给联系人的短信", resident_prompts: "询问老人", saved: "已保存，立即生效",
    reason: "原因", from: "开始", until: "结束", declare: "登记", end: "结束外出", whole_category: "整类住户（如节假日）",
    resident_name: "老人姓名", address: "地址", contact_name: "联系人姓名", contact_phone: "联系人手机",
    check_in_phone: "老人本人手机（先询问本人，可空）", registered: "已登记", installation_check: "安装检查",
    reported: "已上报", not_reported: "尚未收到读数", state: "状态", kind: "类型", step: "级别",
    history: "处理记录", texts: "短信", back: "返回", nothing: "无", role: "角色", edit: "修改",
    safe: "平安", away: "外出", needed_help: "需要帮助", hospitalised: "住院", deceased: "去世",
    device_fault: "设备故障", other: "其他", no_usage: "长时间未用水", continuous_flow: "持续用水",
    high_usage: "用水量过高", meter_offline: "水表离线", device_fault_kind: "设备故障",
    warning: "预警", urgent: "紧急", info: "提示", open: "未确认", acknowledged: "已确认", resolved: "已解除", closed: "已结案",
    failed: "操作失败", changed: "已修改", replace: "更换水表", new_meter: "新表号", everyone: "所有住户",
    reports: "报表", month: "月份", households_covered: "覆盖住户", meters_reporting: "在报水表", false_alarms: "误报（平安、外出）",
    needed_help: "确需帮助", ack_median: "确认用时中位数（分钟）", ack_p90: "确认用时 P90（分钟）", texts_sent: "已发短信",
    segments: "计费条数", printable: "打印版", audit: "操作记录",
  },
  en: {
    sign_in: "Sign in", token: "Access token", token_hint: "An administrator makes one with stillwater tokens add.",
    sign_out: "Sign out", alerts: "Alerts", households: "Households", devices: "Devices", thresholds: "Thresholds",
    absences: "Absences", register: "Register a meter", open_alerts: "Open alerts", no_alerts: "No open alerts",
    acknowledge: "Acknowledge", resolve: "Resolve", close: "Close", disposition: "Disposition", note: "Note",
    since: "Since", opened: "Opened", new_alert: "New alert", household: "Household", contacts: "Contacts",
    water_use: "Water use (litres)", hourly: "Last 7 days (hourly)", daily: "Last 90 days (daily)",
    routine: "Routine", wake: "Usually up", bed: "Usually to bed", not_learned: "Not learned yet (about two weeks of readings)",
    meter_health: "Meter health", last_reading: "Last reading", battery: "Battery", missing: "Readings lost",
    rejected: "Rejected messages", search: "Search (meter, name, address)", offline: "Offline", low_battery: "Low battery",
    losing: "Losing readings", unregistered: "Unregistered meters", never: "never", save: "Save", preview: "Preview (replay of 30 days)",
    category: "Category", meter: "Meter", current: "Current", tried: "New", alerts_count: "Alerts",
    contact_texts: "Texts to contacts", resident_prompts: "Check-ins to residents", saved: "Saved; in force now",
    reason: "Reason", from: "From", until: "Until", declare: "Declare", end: "End absence", whole_category: "A whole category (e.g. a holiday)",
    resident_name: "Resident's name", address: "Address", contact_name: "Contact's name", contact_phone: "Contact's mobile",
    check_in_phone: "Resident's own mobile (asked first; optional)", registered: "Registered", installation_check: "Installation check",
    reported: "Reported", not_reported: "No reading yet", state: "State", kind: "Kind", step: "Step",
    history: "History", texts: "Texts", back: "Back", nothing: "none", role: "Role", edit: "Edit",
    safe: "Safe", away: "Away", needed_help: "Needed help", hospitalised: "Hospitalised", deceased: "Deceased",
    device_fault: "Device fault", other: "Other", no_usage: "No water use", continuous_flow: "Continuous flow",
    high_usage: "Very high use", meter_offline: "Meter offline", device_fault_kind: "Device fault",
    warning: "warning", urgent: "urgent", info: "info", open: "open", acknowledged: "acknowledged", resolved: "resolved", closed: "closed",
    failed: "Failed", changed: "Changed", replace: "Replace meter", new_meter: "New meter id", everyone: "Every household",
    reports: "Reports", month: "Month", households_covered: "Households covered", meters_reporting: "Meters reporting", false_alarms: "False alarms (safe, away)",
    needed_help: "Needed help", ack_median: "Time to acknowledge, median (min)", ack_p90: "Time to acknowledge, p90 (min)", texts_sent: "Texts sent",
    segments: "Segments billed", printable: "Printable page", audit: "Audit log",
  },
};
const DISPOSITIONS = ["safe", "away", "needed_help", "hospitalised", "deceased", "device_fault", "other"];
const POLL_MS = 5000;

let lang = localStorage.getItem("lang") === "en" ? "en" : "zh";
let me = null;          // {name, role, csrf, sees_personal_data}
let seenAlerts = null;  // alert ids already shown, to mark new ones
let timer = null;

const t = (key) => (TEXT[lang][key] ?? key);
const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : t("never");
}
function minutes(m) { return `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`; }

/** Calls the API; a refusal throws its message. */
async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && me && me.csrf) headers["x-csrf-token"] = me.csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (response.status === 401 && path !== "/ui/login") { showLogin(); }
  if (!response.ok) {
    const problems = (data && data.problems) ? "\n" + data.problems.map((p) => `${p.field || p.column}: ${p.reason}`).join("\n") : "";
    const error = new Error(((data && data.error) || `${response.status}`) + problems);
    error.status = response.status;
    throw error;
  }
  return data;
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("lang").textContent = lang === "zh" ? "English" : "中文";
  $("logout").textContent = t("sign_out");
}

function showLogin() {
  me = null;
  clearInterval(timer);
  $("nav").hidden = true; $("logout").hidden = true; $("who").textContent = "";
  $("view").replaceChildren();
  $("login").hidden = false;
}

const PAGES = {
  alerts: { roles: ["admin", "operator", "monitor"], show: alertsPage },
  households: { roles: ["admin", "operator", "monitor", "installer"], show: householdsPage },
  devices: { roles: ["admin", "operator", "installer"], show: devicesPage },
  thresholds: { roles: ["admin", "operator"], show: thresholdsPage },
  absences: { roles: ["admin", "operator"], show: absencesPage },
  register: { roles: ["admin", "installer"], show: registerPage },
  reports: { roles: ["admin", "operator"], show: reportsPage },
};

function signedIn(who) {
  me = who;
  $("login").hidden = true;
  $("logout").hidden = false;
  $("who").textContent = `${who.name} · ${who.role}`;
  const nav = $("nav");
  nav.replaceChildren(...Object.entries(PAGES)
    .filter(([, page]) => page.roles.includes(who.role))
    .map(([name]) => h("a", { href: `#/${name}`, id: `nav-${name}` }, t(name))));
  nav.hidden = false;
  route();
}

function route() {
  if (!me) return;
  clearInterval(timer);
  const [, name = "", arg = ""] = location.hash.split("/");
  for (const a of $("nav").children) a.classList.toggle("here", a.id === `nav-${name}`);
  if (name === "household" && arg) return householdPage(decodeURIComponent(arg));
  const allowed = Object.entries(PAGES).filter(([, p]) => p.roles.includes(me.role));
  const page = PAGES[name] && PAGES[name].roles.includes(me.role) ? PAGES[name] : allowed[0][1];
  page.show(decodeURIComponent(arg));
}

function view(...children) { $("view").replaceChildren(...children); }
function failure(error) { return h("p", { class: "error", role: "alert" }, `${t("failed")}: ${error.message}`); }

// ---- alerts: open ones first, newest and unacknowledged on top; live.

async function alertsPage() {
  seenAlerts = null;
  const list = h("div", { id: "alerts" });
  view(h("h1", {}, t("open_alerts")), list);
  const refresh = async () => {
    try {
      const alerts = await api("GET", "/api/v1/alerts");
      alerts.sort((a, b) => (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1) || b.opened_at - a.opened_at);
      const fresh = seenAlerts === null ? new Set() : new Set(alerts.filter((a) => !seenAlerts.has(a.id)).map((a) => a.id));
      seenAlerts = new Set(alerts.map((a) => a.id));
      list.replaceChildren(...(alerts.length ? alerts.map((a) => alertCard(a, fresh.has(a.id), refresh)) : [h("p", { class: "muted" }, t("no_alerts"))]));
    } catch (error) { list.replaceChildren(failure(error)); }
  };
  await refresh();
  timer = setInterval(refresh, POLL_MS);
}

function kindName(kind) { return t(kind === "device_fault" ? "device_fault_kind" : kind); }

function alertCard(alert, fresh, refresh) {
  const may = me.role !== "installer";
  const status = h("p", { class: "muted", role: "status" });
  const act = async (action, body) => {
    try {
      await api("POST", `/api/v1/alerts/${alert.id}/${action}`, body);
      await refresh();
    } catch (error) { status.replaceChildren(failure(error)); }
  };
  const disposition = h("select", { "aria-label": t("disposition"), class: "disposition" },
    DISPOSITIONS.map((d) => h("option", { value: d }, t(d))));
  const note = h("input", { "aria-label": t("note"), placeholder: t("note"), class: "note" });
  return h("article", { class: `card alert${fresh ? " new" : ""}`, "data-alert": alert.id, "data-state": alert.state },
    h("div", { class: "row" },
      h("span", { class: `badge ${alert.severity}` }, t(alert.severity)),
      h("strong", {}, kindName(alert.kind)),
      h("span", { class: `state state-${alert.state}` }, t(alert.state)),
      fresh ? h("span", { class: "badge info" }, t("new_alert")) : null),
    h("div", { class: "row" },
      h("a", { href: `#/household/${encodeURIComponent(alert.meter)}` }, alert.resident || alert.meter),
      h("span", { class: "muted" }, alert.meter),
      h("span", { class: "muted" }, `${t("since")} ${when(alert.since)}`)),
    h("p", {}, alert.detail),
    may ? h("div", { class: "actions" },
      alert.state === "open" ? h("button", { type: "button", class: "acknowledge", onclick: () => act("acknowledge", {}) }, t("acknowledge")) : null,
      ["open", "acknowledged"].includes(alert.state) ? h("button", { type: "button", class: "secondary resolve", onclick: () => act("resolve", {}) }, t("resolve")) : null,
      disposition, note,
      h("button", { type: "button", class: "secondary close", onclick: () => act("close", { disposition: disposition.value, note: note.value }) }, t("close"))) : null,
    status);
}

// ---- households: search, then one household's page.

async function householdsPage() {
  const results = h("div", { id: "households" });
  const search = h("input", { type: "search", id: "search", placeholder: t("search"), "aria-label": t("search") });
  let page = 1;
  const load = async () => {
    try {
      const found = await api("GET", `/api/v1/meters?q=${encodeURIComponent(search.value)}&page=${page}&per_page=20`);
      const pages = Math.max(1, Math.ceil(found.total / found.per_page));
      results.replaceChildren(
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("meter")), h("th", {}, t("resident_name")), h("th", { class: "hide-narrow" }, t("address")), h("th", {}, t("last_reading")))),
          h("tbody", {}, found.meters.map((m) => h("tr", {},
            h("td", {}, h("a", { href: `#/household/${encodeURIComponent(m.meter)}` }, m.meter)),
            h("td", {}, m.resident), h("td", { class: "hide-narrow" }, m.address), h("td", {}, when(m.last_reading_ts)))))),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", disabled: page <= 1, onclick: () => { page--; load(); } }, "‹"),
          h("span", { class: "muted" }, `${page} / ${pages} (${found.total})`),
          h("button", { type: "button", class: "secondary", disabled: page >= pages, onclick: () => { page++; load(); } }, "›")));
    } catch (error) { results.replaceChildren(failure(error)); }
  };
  search.addEventListener("input", () => { page = 1; load(); });
  view(h("h1", {}, t("households")), search, results);
  await load();
}

async function householdPage(meter) {
  const chart = h("div", { class: "chart", id: "chart" });
  const routine = h("div", { id: "routine" });
  const body = h("div");
  view(h("p", {}, h("a", { href: "#/households" }, `‹ ${t("back")}`)), body);
  let details, alerts = [], absences = [];
  try {
    details = await api("GET", `/api/v1/meters/${encodeURIComponent(meter)}`);
    if (me.role !== "installer") alerts = await api("GET", `/api/v1/alerts?all=true&meter=${encodeURIComponent(meter)}`);
    if (me.role !== "installer") absences = await api("GET", `/api/v1/absences?all=true&meter=${encodeURIComponent(meter)}`);
  } catch (error) { return body.replaceChildren(failure(error)); }
  const r = details.registration || {};
  const s = details.reported || {};
  const byHour = h("button", { type: "button", class: "secondary" }, t("hourly"));
  const byDay = h("button", { type: "button", class: "secondary" }, t("daily"));
  byHour.onclick = () => drawUse(chart, meter, "hour", alerts, absences);
  byDay.onclick = () => drawUse(chart, meter, "day", alerts, absences);
  body.replaceChildren(...[
    h("h1", {}, `${r.resident || meter} · ${meter}`),
    h("p", { class: "muted" }, [r.address, r.category, r.status].filter(Boolean).join(" · ")),
    h("h2", {}, t("water_use")), h("div", { class: "actions" }, byHour, byDay), chart,
    h("h2", {}, t("routine")), routine,
    h("h2", {}, t("contacts")),
    h("ol", {}, (r.contacts || []).map((c) => h("li", {}, `${c.name} `,
      c.phone.includes("*") ? c.phone : h("a", { href: `tel:${c.phone}` }, c.phone)))),
    r.check_in_phone ? h("p", { class: "muted" }, `${t("check_in_phone")}: ${r.check_in_phone}`) : null,
    h("h2", {}, t("meter_health")),
    h("p", {}, `${t("last_reading")}: ${when(s.last_reading_ts)} · ${t("battery")}: ${s.last_battery_pct ?? "–"}% · ${t("missing")}: ${s.readings_missing ?? 0} · ${t("rejected")}: ${s.rejected ?? 0}`),
    alerts.length ? h("h2", {}, t("alerts")) : null,
    alerts.length ? h("ul", {}, alerts.map((a) => h("li", {}, `${when(a.opened_at)} · ${kindName(a.kind)} · ${t(a.severity)} · ${t(a.state)}${a.disposition ? " · " + t(a.disposition) : ""}`))) : null,
    ["admin", "installer"].includes(me.role) ? editForm(meter, r) : null,
    ["admin", "installer"].includes(me.role) && r.status === "active" ? replaceForm(meter) : null,
  ].filter(Boolean));
  await drawUse(chart, meter, "hour", alerts, absences);
  try {
    const learned = await api("GET", `/api/v1/meters/${encodeURIComponent(meter)}/routine`);
    drawRoutine(routine, learned);
  } catch (error) { routine.replaceChildren(failure(error)); }
}

/** Water use as bars, alerts as red lines, absences shaded. */
async function drawUse(target, meter, by, alerts, absences) {
  let use;
  try { use = await api("GET", `/api/v1/meters/${encodeURIComponent(meter)}/consumption?by=${by}`); }
  catch (error) { return target.replaceChildren(failure(error)); }
  const xs = use.litres.map((b) => b.start);
  const ys = use.litres.map((b) => b.used);
  const marks = (u) => {
    const { ctx, bbox } = u;
    ctx.save();
    for (const a of absences) {
      const x0 = Math.max(u.valToPos(a.from, "x", true), bbox.left);
      const x1 = Math.min(u.valToPos(a.ended_at || a.until, "x", true), bbox.left + bbox.width);
      if (x1 > x0) { ctx.fillStyle = "rgba(11,92,173,0.12)"; ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height); }
    }
    ctx.strokeStyle = "#b3261e"; ctx.lineWidth = 2;
    for (const a of alerts) {
      const x = u.valToPos(a.opened_at, "x", true);
      if (x >= bbox.left && x <= bbox.left + bbox.width) { ctx.beginPath(); ctx.moveTo(x, bbox.top); ctx.lineTo(x, bbox.top + bbox.height); ctx.stroke(); }
    }
    ctx.restore();
  };
  const width = Math.max(280, target.clientWidth || 600);
  target.replaceChildren();
  // eslint-disable-next-line no-undef
  new uPlot({
    width, height: 220,
    scales: { x: { time: true } },
    series: [{}, { label: t("water_use"), stroke: "#0b5cad", fill: "rgba(11,92,173,0.35)", paths: uPlot.paths.bars({ size: [0.9, 40] }) }],
    axes: [{}, { size: 50 }],
    hooks: { draw: [marks] },
    legend: { show: false },
  }, [xs, ys], target);
}

function drawRoutine(target, learned) {
  if (!learned.learned || !learned.speaks) {
    return target.replaceChildren(h("p", { class: "muted" }, `${t("not_learned")}${learned.days_seen ? ` (${learned.days_seen})` : ""}`));
  }
  const box = h("div", { class: "chart" });
  const wake = learned.wake_weekday ? minutes(learned.wake_weekday[0]) : "–";
  const bed = learned.bed_weekday ? minutes(learned.bed_weekday[0]) : "–";
  target.replaceChildren(h("p", {}, `${t("wake")} ${wake} · ${t("bed")} ${bed}`), box);
  const hours = [...Array(24).keys()];
  // eslint-disable-next-line no-undef
  new uPlot({
    width: Math.max(280, target.clientWidth || 600), height: 160,
    scales: { x: { time: false }, y: { range: [0, 1] } },
    series: [{ label: "h" }, { label: "weekday", stroke: "#1e7a3c" }, { label: "weekend", stroke: "#a15c00", dash: [4, 4] }],
    axes: [{ values: (u, v) => v.map((x) => `${x}:00`) }, {}],
  }, [hours, learned.weekday, learned.weekend], box);
}

function editForm(meter, r) {
  const field = (name, value) => h("label", {}, h("span", {}, t(name)), h("input", { name, value: value ?? "" }));
  const contacts = r.contacts || [];
  const form = h("form", { class: "card", id: "edit" },
    h("h2", {}, t("edit")),
    h("div", { class: "grid" }, field("resident_name", r.resident), field("address", r.address), field("category", r.category),
      field("check_in_phone", r.check_in_phone)),
    [0, 1, 2].map((i) => h("div", { class: "grid" },
      h("label", {}, h("span", {}, `${t("contact_name")} ${i + 1}`), h("input", { name: `contact${i}_name`, value: contacts[i] ? contacts[i].name : "" })),
      h("label", {}, h("span", {}, `${t("contact_phone")} ${i + 1}`), h("input", { name: `contact${i}_phone`, type: "tel", value: contacts[i] ? contacts[i].phone : "" })))),
    h("button", { type: "submit" }, t("save")),
    h("p", { role: "status", class: "result" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { resident_name: data.get("resident_name"), address: data.get("address"), category: data.get("category"),
      check_in_phone: data.get("check_in_phone"),
      contacts: [0, 1, 2].map((i) => ({ name: data.get(`contact${i}_name`), phone: data.get(`contact${i}_phone`) })).filter((c) => c.name || c.phone) };
    const result = form.querySelector(".result");
    try {
      const done = await api("PATCH", `/api/v1/meters/${encodeURIComponent(meter)}/household`, body);
      result.replaceChildren(h("span", { class: "done" }, `${t("changed")}: ${done.changed}`));
    } catch (error) { result.replaceChildren(failure(error)); }
  });
  return form;
}

function replaceForm(meter) {
  const input = h("input", { name: "new_meter", id: "new-meter", required: true, autocapitalize: "characters" });
  const result = h("p", { role: "status" });
  const form = h("form", { class: "card", id: "replace" },
    h("h2", {}, t("replace")), h("label", {}, h("span", {}, t("new_meter")), input),
    h("button", { type: "submit", class: "secondary" }, t("replace")), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const done = await api("POST", `/api/v1/meters/${encodeURIComponent(meter)}/replace`, { new_meter: input.value.trim() });
      location.hash = `#/household/${encodeURIComponent(done.replaced_by)}`;
    } catch (error) { result.replaceChildren(failure(error)); }
  });
  return form;
}

// ---- devices: offline, low battery, losing readings, unregistered, rejected.

async function devicesPage() {
  const out = h("div");
  view(h("h1", {}, t("devices")), out);
  try {
    // Each list is chosen by the gateway, so it holds however many meters there are.
    const needing = (need) => api("GET", `/api/v1/meters?needs=${need}&per_page=100`);
    const [offline, low, losing] = await Promise.all([needing("offline"), needing("low_battery"), needing("losing")]);
    const list = (title, found, what, id) => [h("h2", {}, `${title} (${found.total})`),
      found.meters.length ? h("ul", { id }, found.meters.map((m) => h("li", {}, h("a", { href: `#/household/${encodeURIComponent(m.meter)}` }, m.meter), ` ${m.resident} · ${what(m)}`))) : h("p", { class: "muted" }, t("nothing"))];
    out.append(...list(t("offline"), offline, (m) => `${t("last_reading")}: ${when(m.last_reading_ts)}`, "offline"),
      ...list(t("low_battery"), low, (m) => `${m.battery_pct ?? "?"}%`, "low-battery"),
      ...list(t("losing"), losing, (m) => `${t("missing")} ${m.readings_missing} · ${t("rejected")} ${m.rejected}`, "losing"));
    if (me.role !== "operator") {
      const unregistered = await api("GET", "/api/v1/meters/unregistered");
      out.append(h("h2", {}, `${t("unregistered")} (${unregistered.length})`),
        h("ul", {}, unregistered.map((u) => h("li", {}, `${u.meter} · ${when(u.last_message)} · ${u.readings}`))));
      const rejected = await api("GET", "/api/v1/ingest/rejected?limit=20");
      out.append(h("h2", {}, t("rejected")),
        h("ul", {}, rejected.map((m) => h("li", {}, `${when(m.received_at)} · ${m.meter || m.topic} · ${m.reason}: ${m.detail}`))));
    }
  } catch (error) { out.append(failure(error)); }
}

// ---- thresholds, with a replayed preview before saving.

async function thresholdsPage(category) {
  const scope = h("input", { id: "scope", value: category || "general", "aria-label": t("category") });
  const isMeter = h("select", { id: "scope-kind", "aria-label": t("category") },
    h("option", { value: "category" }, t("category")), h("option", { value: "meter" }, t("meter")), h("option", { value: "global" }, t("everyone")));
  const table = h("div", { id: "values" });
  const result = h("div", { id: "preview", role: "status" });
  const inputs = {};
  const which = () => (isMeter.value === "global" ? {} : { [isMeter.value]: scope.value.trim() });
  const load = async () => {
    scope.hidden = isMeter.value === "global";
    try {
      const query = isMeter.value === "global" ? "" : `?${isMeter.value}=${encodeURIComponent(scope.value.trim())}`;
      const shown = await api("GET", `/api/v1/thresholds${query}`);
      table.replaceChildren(h("table", {}, h("tbody", {}, shown.thresholds.map((row) => {
        inputs[row.key] = h("input", { name: row.key, value: row.value, "data-was": row.value });
        return h("tr", {}, h("td", {}, row.key), h("td", {}, inputs[row.key]), h("td", { class: "muted hide-narrow" }, row.from));
      }))));
    } catch (error) { table.replaceChildren(failure(error)); }
  };
  const changed = () => Object.fromEntries(Object.entries(inputs).filter(([, i]) => i.value !== i.dataset.was).map(([k, i]) => [k, i.value]));
  const preview = async () => {
    result.replaceChildren(h("p", { class: "muted" }, "…"));
    try {
      const p = await api("POST", "/api/v1/thresholds/preview", { ...which(), settings: changed() });
      result.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, t("current")), h("th", {}, t("tried")))),
        h("tbody", {},
          [["alerts_count", "alerts"], ["contact_texts", "contact_texts"], ["resident_prompts", "resident_prompts"]].map(([label, key]) =>
            h("tr", {}, h("td", {}, t(label)), h("td", {}, p.current[key]), h("td", { class: `tried-${key}` }, p.tried[key]))),
          p.by_kind.map((k) => h("tr", {}, h("td", {}, `${kindName(k.kind)} (${t(k.severity)})`), h("td", {}, k.current), h("td", {}, k.tried))))),
        h("p", { class: "muted" }, `${p.households} · ${p.days} d`));
    } catch (error) { result.replaceChildren(failure(error)); }
  };
  const save = async () => {
    try {
      await api("POST", "/api/v1/thresholds", { ...which(), settings: changed() });
      result.replaceChildren(h("p", { class: "done" }, t("saved")));
      await load();
    } catch (error) { result.replaceChildren(failure(error)); }
  };
  scope.addEventListener("change", load);
  isMeter.addEventListener("change", load);
  view(h("h1", {}, t("thresholds")), h("div", { class: "grid" }, isMeter, scope), table,
    h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "do-preview", onclick: preview }, t("preview")),
      h("button", { type: "button", id: "do-save", onclick: save }, t("save"))), result);
  await load();
}

// ---- absences, one household or a whole category.

async function absencesPage() {
  const list = h("div");
  const today = new Date().toISOString().slice(0, 10);
  const form = h("form", { class: "card", id: "absence" },
    h("div", { class: "grid" },
      h("label", {}, h("span", {}, t("meter")), h("input", { name: "meter" })),
      h("label", {}, h("span", {}, t("whole_category")), h("input", { name: "category" })),
      h("label", {}, h("span", {}, t("reason")), h("input", { name: "reason", required: true })),
      h("label", {}, h("span", {}, t("from")), h("input", { name: "from", type: "date", value: today })),
      h("label", {}, h("span", {}, t("until")), h("input", { name: "until", type: "date", required: true }))),
    h("button", { type: "submit" }, t("declare")), h("p", { role: "status", class: "result" }));
  const load = async () => {
    try {
      const absences = await api("GET", "/api/v1/absences");
      list.replaceChildren(...absences.map((a) => h("div", { class: "card" },
        h("div", { class: "row" }, h("strong", {}, a.resident), h("span", { class: "muted" }, a.meters), h("span", {}, a.reason)),
        h("p", { class: "muted" }, `${when(a.from)} – ${when(a.until)}`),
        h("button", { type: "button", class: "secondary", onclick: async () => { await api("DELETE", `/api/v1/absences/${a.id}`).catch(() => {}); load(); } }, t("end")))));
    } catch (error) { list.replaceChildren(failure(error)); }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const seconds = (day) => Math.floor(new Date(`${day}T00:00:00`).getTime() / 1000);
    const body = { reason: data.get("reason"), from: seconds(data.get("from")), until: seconds(data.get("until")) + 86400 };
    if (data.get("meter")) body.meters = [data.get("meter").trim()];
    if (data.get("category")) body.category = data.get("category").trim();
    const result = form.querySelector(".result");
    try {
      const done = await api("POST", "/api/v1/absences", body);
      result.replaceChildren(h("span", { class: "done" }, `${t("saved")} (${done.households})`));
      load();
    } catch (error) { result.replaceChildren(failure(error)); }
  });
  view(h("h1", {}, t("absences")), form, list);
  await load();
}

// ---- registering a meter at the door, then the installation check.

function registerPage() {
  const field = (name, attrs = {}) => h("label", {}, h("span", {}, t(name)), h("input", { name, id: `f-${name}`, ...attrs }));
  const result = h("div", { id: "register-result", role: "status" });
  const form = h("form", { class: "card", id: "register" },
    h("div", { class: "grid" },
      field("meter", { required: true, autocapitalize: "characters" }), field("resident_name", { required: true }),
      field("address", { required: true }), field("category", { value: "elderly_alone" }),
      field("contact_name", { required: true }), field("contact_phone", { type: "tel", required: true }),
      field("check_in_phone", { type: "tel" })),
    h("button", { type: "submit", id: "do-register" }, t("register")), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const meter = data.get("meter").trim();
    try {
      await api("POST", "/api/v1/meters", {
        meter_id: meter, resident_name: data.get("resident_name"), address: data.get("address"),
        category: data.get("category"), check_in_phone: data.get("check_in_phone"),
        contacts: [{ name: data.get("contact_name"), phone: data.get("contact_phone") }],
      });
      const check = await api("GET", `/api/v1/meters/${encodeURIComponent(meter)}`);
      result.replaceChildren(h("p", { class: "done", id: "registered" }, `${t("registered")}: ${meter}`),
        h("p", {}, `${t("installation_check")}: ${check.reported ? `${t("reported")} ${when(check.reported.last_reading_ts)}` : t("not_reported")}`),
        h("a", { href: `#/household/${encodeURIComponent(meter)}` }, t("household")));
    } catch (error) { result.replaceChildren(failure(error)); }
  });
  view(h("h1", {}, t("register")), form);
}

// ---- the month's report for the bureau, and the audit log.

async function reportsPage() {
  const month = h("input", { type: "month", id: "month", value: new Date().toISOString().slice(0, 7), "aria-label": t("month") });
  const summary = h("div", { id: "report" });
  const log = h("div", { id: "audit" });
  const load = async () => {
    const m = month.value;
    try {
      const r = await api("GET", `/api/v1/reports/monthly?month=${m}`);
      const row = (label, value) => h("tr", {}, h("td", {}, t(label)), h("td", {}, value ?? "–"));
      summary.replaceChildren(
        h("table", {}, h("tbody", {},
          row("households_covered", r.households_covered), row("meters_reporting", r.meters_reporting),
          row("alerts_count", r.alerts_total), row("false_alarms", r.false_alarms), row("needed_help", r.needed_help),
          row("ack_median", r.acknowledgement.median_minutes), row("ack_p90", r.acknowledgement.p90_minutes),
          row("texts_sent", r.texts.sent), row("segments", r.texts.segments))),
        h("div", { class: "actions" },
          h("a", { href: `/api/v1/reports/monthly?month=${m}&format=html`, target: "_blank", rel: "noopener" }, t("printable")),
          h("a", { href: `/api/v1/reports/monthly?month=${m}&format=csv`, download: `stillwater-${m}.csv` }, "CSV")));
    } catch (error) { summary.replaceChildren(failure(error)); }
  };
  month.addEventListener("change", load);
  view(h("h1", {}, t("reports")), month, summary, h("h2", {}, t("audit")), log);
  await load();
  try {
    const entries = await api("GET", "/api/v1/audit?limit=50");
    log.replaceChildren(h("table", {}, h("tbody", {}, entries.map((e) => h("tr", {},
      h("td", { class: "muted" }, when(e.at)), h("td", {}, `${e.actor} (${e.channel})`),
      h("td", {}, `${e.action} ${e.subject}`), h("td", {}, e.detail))))));
  } catch (error) { log.replaceChildren(failure(error)); }
}

// ---- start.

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const who = await api("POST", "/ui/login", { token: $("token").value.trim() });
    $("token").value = "";
    signedIn(who);
  } catch (error) { $("login-error").textContent = error.message; }
});
$("logout").addEventListener("click", async () => { await api("POST", "/ui/logout").catch(() => {}); showLogin(); });
$("lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("lang", lang);
  translate();
  if (me) signedIn(me);
});
window.addEventListener("hashchange", route);
translate();
api("GET", "/api/v1/session").then(signedIn).catch(showLogin);
