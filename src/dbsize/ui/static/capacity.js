// Overview (/ui), fleet (/ui/fleet) and instance (/ui/instances/{id}): capacity read from the
// statistics, forecast and freshness endpoints, and the job list.
"use strict";

const STATS = "/v1/statistics";
const TRIGGERS = ["cron", "api", "cli", "retry"];
const RECENT_DAYS = 7;
const PERIOD_TYPES = ["daily", "weekly", "monthly", "quarterly"];
const FORECAST_STATUSES = [
  "ok",
  "exceeded",
  "not_growing",
  "beyond_horizon",
  "insufficient_data",
  "no_threshold",
  "stale",
];

// A forecast status in words, as people read it.
function statusText(status) {
  return (status || "").replaceAll("_", " ");
}

// Calendar date "YYYY-MM-DD" -> seconds since the epoch at UTC midnight (uPlot's x values).
function dayToSeconds(day) {
  return Date.parse(`${day}T00:00:00Z`) / 1000;
}

const CHART_COLOURS = ["#0b5cad", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7f8f", "#cf222e", "#57606a"];

// uPlot options and data for an instance's size trend: the instance total, one line per
// database (its chart form: `period_start` and `avg_size_mb` columns), and the forecast
// (fitted line to the projected date, band edge to the earliest date, threshold) when there
// is one.
function trendChart(series, databases, forecast, width) {
  const days = new Set(series.map((r) => r.period_start));
  for (const db of databases) for (const day of db.period_start) days.add(day);
  const withForecast = forecast && forecast.status === "ok" && forecast.projected_date;
  if (withForecast) {
    days.add(forecast.last_sample_date);
    days.add(forecast.projected_date);
    days.add(forecast.earliest_date);
  }
  const xs = [...days].sort();
  const index = new Map(xs.map((d, i) => [d, i]));
  const column = (rows) => {
    const values = new Array(xs.length).fill(null);
    for (const r of rows) values[index.get(r.period_start)] = Number(r.avg_size_mb);
    return values;
  };
  const data = [xs.map(dayToSeconds), column(series)];
  const lines = [{}, { label: "instance total", stroke: CHART_COLOURS[0], width: 2 }];
  databases.forEach((db, i) => {
    const values = new Array(xs.length).fill(null);
    db.period_start.forEach((day, k) => { values[index.get(day)] = db.avg_size_mb[k]; });
    data.push(values);
    lines.push({ label: db.database_name, stroke: CHART_COLOURS[(i + 1) % CHART_COLOURS.length], width: 1 });
  });
  if (withForecast) {
    const fitted = new Array(xs.length).fill(null);
    fitted[index.get(forecast.last_sample_date)] = Number(forecast.last_value_mb);
    fitted[index.get(forecast.projected_date)] = Number(forecast.threshold_mb);
    const band = new Array(xs.length).fill(null);
    band[index.get(forecast.last_sample_date)] = Number(forecast.last_value_mb);
    band[index.get(forecast.earliest_date)] = Number(forecast.threshold_mb);
    const threshold = new Array(xs.length).fill(Number(forecast.threshold_mb));
    data.push(fitted, band, threshold);
    lines.push(
      { label: "forecast", stroke: "#cf222e", width: 2, dash: [6, 4], spanGaps: true },
      { label: "95 % band edge", stroke: "#ff8182", width: 1, dash: [2, 4], spanGaps: true },
      { label: "threshold", stroke: "#57606a", width: 1, dash: [10, 6] },
    );
  }
  const options = {
    width,
    height: 320,
    series: lines.map((s, i) => (i === 0 ? s : { ...s, value: (u, v) => dbsize.formatMB(v) })),
    axes: [{}, { size: 80, values: (u, ticks) => ticks.map((v) => dbsize.formatMB(v, 0)) }],
    scales: { x: { time: true } },
  };
  return { options, data };
}

document.addEventListener("alpine:init", () => {
  Alpine.data("overviewPage", () => ({
    statusText,
    totals: null,
    lastJobs: [],
    freshness: null,
    growers: null,
    soonest: null,
    error: "",

    async init() {
      try {
        const [daily, monthly, freshness, growers, soonest, jobs] = await Promise.all([
          // Sums over the latest day of each instance within the last week (an instance
          // silent for longer is in the freshness warning) and over the latest month of each:
          // two small answers instead of every instance's rows (2,000 on 1,000 instances).
          dbsize.api(`${STATS}/instances/totals` + dbsize.queryString({
            period_type: "daily",
            latest: true,
            start: dbsize.addDays(dbsize.today(), -RECENT_DAYS),
          })),
          dbsize.api(`${STATS}/instances/totals?period_type=monthly&latest=true`),
          dbsize.api("/v1/freshness"),
          dbsize.api(`${STATS}/top?period_type=monthly&level=database&by=growth_mb_per_day&n=5&complete=false`),
          dbsize.api("/v1/forecast?level=database&status=ok&limit=5"),
          // Each trigger's newest job, in one request (the list's latest_per_trigger).
          dbsize.api("/v1/aggregation-jobs?latest_per_trigger=true&limit=10"),
        ]);
        this.totals = {
          instances: daily.instances,
          databases: daily.max_database_count,
          sizeMB: Number(daily.avg_size_mb || 0),
          monthChangeMB: Number(monthly.size_change_mb || 0),
          asOf: daily.newest_period_start || "",
        };
        this.freshness = freshness;
        this.growers = growers;
        this.soonest = soonest;
        this.lastJobs = TRIGGERS.map((trigger) => ({
          trigger,
          job: jobs.items.find((j) => j.trigger === trigger) || null,
        }));
      } catch (e) {
        this.error = e.message;
      }
    },
  }));

  Alpine.data("fleetPage", () => ({
    statusText,
    statuses: FORECAST_STATUSES,
    filters: dbsize.readQuery(["level", "rank", "db_type", "environment", "q", "status"]),
    rows: [],
    rowsRank: "",
    counts: null,
    nextCursor: null,
    loadSeq: 0,
    loading: true,
    error: "",

    init() {
      this.defaults();
      window.addEventListener("popstate", () => {
        this.filters = dbsize.readQuery(["level", "rank", "db_type", "environment", "q", "status"]);
        this.defaults();
        this.load();
      });
      this.load();
    },

    defaults() {
      this.filters.level = this.filters.level || "database";
      this.filters.rank = this.filters.rank || "days";
    },

    // The loaded rows of one ranking (rows of the other ranking have other fields).
    shown(rank) {
      return rank === this.rowsRank ? this.rows : [];
    },

    apply() {
      const { level, rank, ...rest } = this.filters;
      const query = {
        level: level === "database" ? "" : level,
        rank: rank === "days" ? "" : rank,
        ...rest,
      };
      const url = location.pathname + dbsize.queryString(query);
      if (url !== location.pathname + location.search) history.pushState(null, "", url);
      this.load();
    },

    // The search is the API's name filter (the database's name, or the instance's at the
    // instance level), so it finds rows beyond the first page; the text is kept in the URL.
    search() {
      const url = location.pathname + dbsize.queryString({ ...this.urlFilters(), q: this.filters.q });
      history.replaceState(null, "", url);
      this.load();
    },

    nameFilter() {
      const f = this.filters;
      return f.level === "instance"
        ? { instance_name_contains: f.q }
        : { database_name_contains: f.q };
    },

    urlFilters() {
      return dbsize.readQuery(["level", "rank", "db_type", "environment", "status"]);
    },

    query(cursor) {
      const f = this.filters;
      if (f.rank === "growth") {
        return `${STATS}/top` + dbsize.queryString({
          period_type: "monthly", level: f.level, by: "growth_mb_per_day", n: 200,
          complete: "false", db_type: f.db_type, environment: f.environment, ...this.nameFilter(),
        });
      }
      return "/v1/forecast" + dbsize.queryString({
        level: f.level, db_type: f.db_type, environment: f.environment, status: f.status,
        ...this.nameFilter(), limit: 200, cursor,
      });
    },

    // Only the newest request's answer is shown (typing in the search starts one per pause).
    async load() {
      const seq = ++this.loadSeq;
      this.loading = true;
      this.error = "";
      try {
        const rank = this.filters.rank;
        const body = await dbsize.api(this.query());
        if (seq !== this.loadSeq) return;
        this.rows = body.items;
        this.rowsRank = rank;
        this.counts = body.counts || null;
        this.nextCursor = body.next_cursor || null;
      } catch (e) {
        if (seq !== this.loadSeq) return;
        this.error = e.message;
        this.rows = [];
        this.rowsRank = "";
      } finally {
        if (seq === this.loadSeq) this.loading = false;
      }
    },

    async more() {
      const body = await dbsize.api(this.query(this.nextCursor));
      this.rows = this.rows.concat(body.items);
      this.nextCursor = body.next_cursor || null;
    },
  }));

  Alpine.data("instancePage", (instanceId) => ({
    periodTypes: PERIOD_TYPES,
    period: dbsize.readQuery(["period"]).period || "daily",
    instance: null,
    series: [],
    databases: [],
    forecast: null,
    showAll: false,
    recentRows: 31,
    points: 0,
    error: "",
    chart: null,

    async init() {
      window.addEventListener("popstate", () => {
        this.period = dbsize.readQuery(["period"]).period || "daily";
        this.load();
      });
      window.addEventListener("resize", () => this.resize());
      try {
        const [instance, forecast] = await Promise.all([
          dbsize.api(`/v1/instances/${instanceId}`),
          dbsize.api(`/v1/forecast?level=instance&instance_id=${instanceId}&limit=1`),
        ]);
        this.instance = instance;
        this.forecast = forecast.items[0] || null;
      } catch (e) {
        this.error = e.message;
        return;
      }
      await this.load();
    },

    choose(period) {
      this.period = period;
      history.pushState(null, "", location.pathname + (period === "daily" ? "" : `?period=${period}`));
      this.load();
    },

    async load() {
      try {
        // The databases in chart form (two columns each and their newest row): with a year
        // of daily rows of 20 databases the answer is 0.37 MB, 5.5 MB with full rows.
        const body = await dbsize.api(
          `/v1/instances/${instanceId}/statistics?period_type=${this.period}&include=database_sizes`,
        );
        this.series = body.series;
        this.databases = body.database_sizes || [];
        this.draw();
      } catch (e) {
        this.error = e.message;
      }
    },

    // Newest first; a long daily series shows its latest rows until asked for all.
    recent() {
      const rows = this.series.slice().reverse();
      return this.showAll ? rows : rows.slice(0, this.recentRows);
    },

    latest(db) {
      return db.latest || null;
    },

    draw() {
      const holder = this.$refs.chart;
      const { options, data } = trendChart(this.series, this.databases, this.forecast, holder.clientWidth || 600);
      if (this.chart) this.chart.destroy();
      this.chart = new uPlot(options, data, holder);
      this.points = data[1].filter((v) => v !== null).length;
    },

    resize() {
      if (this.chart) this.chart.setSize({ width: this.$refs.chart.clientWidth, height: 320 });
    },
  }));
});
