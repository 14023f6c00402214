// Overview (/ui): what the fleet looks like and whether last night's jobs did their work.
"use strict";

const TRIGGERS = ["cron", "api", "cli", "retry"];

document.addEventListener("alpine:init", () => {
  Alpine.data("overviewPage", () => ({
    lastJobs: [],
    error: "",
    loaded: false,

    async init() {
      try {
        const pages = await Promise.all(
          TRIGGERS.map((t) => dbsize.api(`/v1/aggregation-jobs?trigger=${t}&limit=1`)),
        );
        this.lastJobs = TRIGGERS.map((trigger, i) => ({ trigger, job: pages[i].items[0] || null }));
      } catch (e) {
        this.error = e.message;
      } finally {
        this.loaded = true;
      }
    },
  }));
});
