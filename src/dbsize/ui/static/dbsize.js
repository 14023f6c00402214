// dbsize dashboard: what every page shares. Talks to the public API only (same origin), sends the
// API key the user entered (kept in sessionStorage, never in a cookie or on the server), and
// formats sizes and dates the same way everywhere.
"use strict";

const dbsize = (() => {
  const KEY_STORAGE = "dbsize.apiKey";
  const TZ = document.body.dataset.timezone || "UTC";

  function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  function setApiKey(value) {
    if (value) sessionStorage.setItem(KEY_STORAGE, value.trim());
    else sessionStorage.removeItem(KEY_STORAGE);
  }

  function headers(extra) {
    const h = { Accept: "application/json", ...(extra || {}) };
    const key = apiKey();
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  // An API error carries the problem+json body: `detail` is the sentence to show.
  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(path, { method = "GET", body, signal } = {}) {
    const init = { method, headers: headers(), signal };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new ApiError(response.status, data || {});
    return data;
  }

  // Server-Sent Events over fetch (EventSource cannot send an Authorization header). Calls
  // onEvent(name, data) for each event; resolves when the server ends the stream.
  async function events(path, onEvent, signal) {
    const response = await fetch(path, {
      headers: headers({ Accept: "text/event-stream" }),
      signal,
    });
    if (!response.ok) {
      const text = await response.text();
      throw new ApiError(response.status, text ? JSON.parse(text) : {});
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  // Sizes arrive in MB; show MB, GB or TB by magnitude (1 GB = 1024 MB, as databases count).
  function formatMB(mb, digits = 1) {
    if (mb === null || mb === undefined || Number.isNaN(Number(mb))) return "—";
    const value = Number(mb);
    const abs = Math.abs(value);
    if (abs >= 1024 * 1024) return `${(value / (1024 * 1024)).toFixed(digits)} TB`;
    if (abs >= 1024) return `${(value / 1024).toFixed(digits)} GB`;
    return `${value.toFixed(digits)} MB`;
  }

  function formatSignedMB(mb) {
    if (mb === null || mb === undefined) return "—";
    return (Number(mb) > 0 ? "+" : "") + formatMB(mb);
  }

  function formatPercent(value) {
    if (value === null || value === undefined) return "—";
    return `${Number(value) > 0 ? "+" : ""}${Number(value).toFixed(1)} %`;
  }

  const dateTimeFormat = new Intl.DateTimeFormat("sv-SE", {
    timeZone: TZ,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });

  // An instant (ISO string) as "2026-12-05 17:03:09" in the configured time zone.
  function formatDateTime(iso) {
    if (!iso) return "—";
    return dateTimeFormat.format(new Date(iso));
  }

  // A calendar date ("2026-12-05") stays as it is: periods are dates, not instants.
  function formatDate(value) {
    return value || "—";
  }

  // The UTC instant at which a calendar day starts in the configured time zone, as ISO.
  function zonedDayStart(day) {
    const [y, m, d] = day.split("-").map(Number);
    const guess = Date.UTC(y, m - 1, d);
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("en-US", {
        timeZone: TZ,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      })
        .formatToParts(new Date(guess))
        .map((p) => [p.type, Number(p.value)]),
    );
    const asZone = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
    return new Date(guess - (asZone - guess)).toISOString();
  }

  function addDays(day, days) {
    const [y, m, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
  }

  function nextDay(day) {
    return addDays(day, 1);
  }

  // Today's date in the configured time zone.
  function today() {
    return dateTimeFormat.format(new Date()).slice(0, 10);
  }

  // URL query <-> filter object; empty values are left out so URLs stay short.
  function readQuery(names) {
    const params = new URLSearchParams(location.search);
    return Object.fromEntries(names.map((n) => [n, params.get(n) || ""]));
  }

  function queryString(filters) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) {
      if (v !== "" && v !== null && v !== undefined && v !== false) params.set(k, v);
    }
    const text = params.toString();
    return text ? `?${text}` : "";
  }

  return {
    TZ,
    ApiError,
    api,
    events,
    apiKey,
    setApiKey,
    formatMB,
    formatSignedMB,
    formatPercent,
    formatDateTime,
    formatDate,
    zonedDayStart,
    addDays,
    nextDay,
    today,
    readQuery,
    queryString,
  };
})();

document.addEventListener("alpine:init", () => {
  Alpine.data("apiKeyForm", () => ({
    key: dbsize.apiKey(),
    saved: dbsize.apiKey() !== "",
    // The page's data was fetched with the previous key (or none): fetch it again.
    save() {
      dbsize.setApiKey(this.key);
      location.reload();
    },
  }));
});
