// Jobs list (/ui/jobs) and job page (/ui/jobs/{id}).
"use strict";

const JOBS = "/v1/aggregation-jobs";
const STATUSES = ["queued", "running", "succeeded", "partial", "failed", "cancelled"];
const PERIODS = ["daily", "weekly", "monthly", "quarterly"];

// What the API would refuse with a 409, so the buttons are disabled instead of failing.
function canCancel(job) {
  return Boolean(job) && !job.done;
}

function canRetry(job) {
  return Boolean(job) && job.done && job.failed_instances + job.cancelled_instances > 0;
}

// The request as sent, with a long instance list shown as its length.
function requestView(request) {
  const view = { ...request };
  if (Array.isArray(view.instance_ids) && view.instance_ids.length > 10) {
    view.instance_ids = `${view.instance_ids.length} instances`;
  }
  return JSON.stringify(view, null, 2);
}

function jobListQuery(filters, cursor) {
  const q = { status: filters.status, trigger: filters.trigger, limit: 50 };
  if (filters.date) {
    q.created_after = dbsize.zonedDayStart(filters.date);
    q.created_before = dbsize.zonedDayStart(dbsize.nextDay(filters.date));
  }
  if (cursor) q.cursor = cursor;
  return q;
}

// The submit form's fields -> the API's JobCreate body.
function jobBody(form) {
  const body = {};
  const periods = PERIODS.filter((p) => form.periods.includes(p));
  if (periods.length && periods.length < PERIODS.length) body.periods = periods;
  if (form.scope === "as_of" && form.as_of) body.as_of = form.as_of;
  if (form.scope === "range") {
    body.start = form.start;
    body.end = form.end;
  }
  if (form.scope === "incremental") body.incremental = true;
  return body;
}

document.addEventListener("alpine:init", () => {
  Alpine.data("jobsPage", () => ({
    statuses: STATUSES,
    periods: PERIODS,
    filters: dbsize.readQuery(["status", "trigger", "date"]),
    jobs: [],
    counts: null,
    loadSeq: 0,
    nextCursor: null,
    loading: true,
    error: "",
    form: { periods: [...PERIODS], scope: "today", as_of: "", start: "", end: "" },
    submitting: false,
    submitError: "",

    init() {
      window.addEventListener("popstate", () => {
        this.filters = dbsize.readQuery(["status", "trigger", "date"]);
        this.load();
      });
      this.load();
    },

    applyFilters() {
      const url = location.pathname + dbsize.queryString(this.filters);
      if (url !== location.pathname + location.search) history.pushState(null, "", url);
      this.load();
    },

    clearFilters() {
      this.filters = { status: "", trigger: "", date: "" };
      this.applyFilters();
    },

    // Only the newest request's answer is shown: a filter changed while the previous answer
    // was on its way must not be overwritten by it (as capacity.js does).
    async load() {
      const seq = ++this.loadSeq;
      this.loading = true;
      this.error = "";
      try {
        const listQuery = jobListQuery(this.filters);
        const countQuery = { ...listQuery, status: "", limit: "" };
        const [page, counts] = await Promise.all([
          dbsize.api(JOBS + dbsize.queryString(listQuery)),
          dbsize.api(`${JOBS}/status-counts` + dbsize.queryString(countQuery)),
        ]);
        if (seq !== this.loadSeq) return;
        this.jobs = page.items;
        this.nextCursor = page.next_cursor;
        this.counts = counts;
      } catch (e) {
        if (seq !== this.loadSeq) return;
        this.error = e.message;
      } finally {
        if (seq === this.loadSeq) this.loading = false;
      }
    },

    async more() {
      try {
        const page = await dbsize.api(JOBS + dbsize.queryString(jobListQuery(this.filters, this.nextCursor)));
        this.jobs = this.jobs.concat(page.items);
        this.nextCursor = page.next_cursor;
      } catch (e) {
        this.error = e.message;
      }
    },

    async submit() {
      this.submitting = true;
      this.submitError = "";
      try {
        const job = await dbsize.api(JOBS, { method: "POST", body: jobBody(this.form) });
        location.assign(`/ui/jobs/${job.id}`);
      } catch (e) {
        this.submitError = e.message;
        this.submitting = false;
      }
    },
  }));

  Alpine.data("jobPage", (jobId) => ({
    job: null,
    records: [],
    recordsCursor: null,
    failedOnly: dbsize.readQuery(["failed"]).failed === "1",
    statusHistory: [],
    live: false,
    error: "",
    actionError: "",
    acting: false,

    async init() {
      window.addEventListener("popstate", () => {
        this.failedOnly = dbsize.readQuery(["failed"]).failed === "1";
        this.loadRecords();
      });
      try {
        this.show(await dbsize.api(`${JOBS}/${jobId}`));
      } catch (e) {
        this.error = e.message;
        return;
      }
      await this.loadRecords();
      if (!this.job.done) this.follow();
    },

    show(job) {
      this.job = job;
      if (this.statusHistory[this.statusHistory.length - 1] !== job.status) {
        this.statusHistory.push(job.status);
      }
    },

    // Live updates over the job's SSE stream; the stream ends after the terminal status.
    async follow() {
      this.live = true;
      try {
        await dbsize.events(`${JOBS}/${jobId}/events`, (name, data) => {
          if (name !== "job") return;
          this.show(data);
          this.loadRecords();
        });
      } catch (e) {
        this.error = `live updates stopped: ${e.message}`;
      } finally {
        this.live = false;
      }
    },

    toggleFailedOnly() {
      const query = this.failedOnly ? "?failed=1" : "";
      history.pushState(null, "", location.pathname + query);
      this.loadRecords();
    },

    async loadRecords(more = false) {
      const query = { status: this.failedOnly ? "failed" : "", limit: 100 };
      if (more) query.cursor = this.recordsCursor;
      try {
        const page = await dbsize.api(`${JOBS}/${jobId}/instances` + dbsize.queryString(query));
        this.records = more ? this.records.concat(page.items) : page.items;
        this.recordsCursor = page.next_cursor;
      } catch (e) {
        this.error = e.message;
      }
    },

    canCancel() {
      return canCancel(this.job) && !this.acting;
    },

    canRetry() {
      return canRetry(this.job) && !this.acting;
    },

    async cancel() {
      this.acting = true;
      this.actionError = "";
      try {
        this.show(await dbsize.api(`${JOBS}/${jobId}/cancel`, { method: "POST" }));
        await this.loadRecords();
      } catch (e) {
        this.actionError = e.message;
      } finally {
        this.acting = false;
      }
    },

    async retry() {
      this.acting = true;
      this.actionError = "";
      try {
        const job = await dbsize.api(`${JOBS}/${jobId}/retry`, { method: "POST" });
        location.assign(`/ui/jobs/${job.id}`);
      } catch (e) {
        this.actionError = e.message;
        this.acting = false;
      }
    },
  }));
});
