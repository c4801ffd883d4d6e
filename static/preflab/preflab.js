/* preflab UI behaviour: ranking (drag + keyboard), shortcuts, time per record, remembered panels.
   Everything is delegated from document or attached in htmx.onLoad, so it survives htmx swaps. */
(function () {
  "use strict";

  // --- time spent on the current record (visible time only) -------------------------------------
  const clock = { total: 0, since: null, sent: 0, record: null };
  function clockStart(recordId) {
    clock.total = 0; clock.sent = 0; clock.record = recordId;
    clock.since = document.visibilityState === "visible" ? performance.now() : null;
  }
  function clockElapsed() {
    return clock.total + (clock.since !== null ? (performance.now() - clock.since) / 1000 : 0);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { if (clock.since === null) clock.since = performance.now(); }
    else if (clock.since !== null) { clock.total += (performance.now() - clock.since) / 1000; clock.since = null; }
  });

  function annotateForm() { return document.getElementById("annotate-form"); }

  // --- ranking ---------------------------------------------------------------------------------
  function rankInputs(list) {
    const out = {};
    list.querySelectorAll(".rank-item").forEach(function (li) {
      out[li.dataset.field] = li.querySelector("input[type=hidden]");
    });
    return out;
  }
  function readRanks(list) {
    const ranks = {};
    const inputs = rankInputs(list);
    Object.keys(inputs).forEach(function (f) {
      const v = parseInt(inputs[f].value, 10);
      ranks[f] = isNaN(v) ? null : v;
    });
    return ranks;
  }
  function writeRanks(list, ranks) {
    const form = list.closest("form");
    const inputs = rankInputs(list);
    let changed = false;
    Object.keys(inputs).forEach(function (f) {
      const value = ranks[f] == null ? "" : String(ranks[f]);
      if (inputs[f].value !== value) { inputs[f].value = value; changed = true; }
    });
    renderRanks(list, ranks);
    if (changed) {
      const q = list.closest(".question");
      if (q) { q.classList.remove("has-error"); const e = q.querySelector(".q-error"); if (e) e.textContent = ""; }
      list.dispatchEvent(new Event("change", { bubbles: true }));
    }
    return form;
  }
  function renderRanks(list, ranks) {
    const items = Array.from(list.querySelectorAll(".rank-item"));
    const form = list.closest("form");
    const isFirst = form && form.querySelector(".rank-list") === list;
    items.forEach(function (li) {
      const r = ranks[li.dataset.field];
      li.querySelector(".rank-num").textContent = r == null ? "–" : r;
      if (r == null) li.removeAttribute("data-rank"); else li.dataset.rank = r;
    });
    // keep the list in rank order: ranked first, unranked after, stable otherwise
    const order = items.slice().sort(function (a, b) {
      const ra = ranks[a.dataset.field], rb = ranks[b.dataset.field];
      if (ra == null && rb == null) return items.indexOf(a) - items.indexOf(b);
      if (ra == null) return 1;
      if (rb == null) return -1;
      return ra - rb || items.indexOf(a) - items.indexOf(b);
    });
    order.forEach(function (li) { list.appendChild(li); });
    if (isFirst) {
      form.querySelectorAll(".response-card").forEach(function (card) {
        const r = ranks[card.dataset.field];
        if (r == null) card.removeAttribute("data-rank"); else card.dataset.rank = r;
        card.querySelectorAll(".rank-chip").forEach(function (chip) {
          chip.setAttribute("aria-pressed", String(parseInt(chip.dataset.rankSet, 10) === r));
        });
      });
    }
  }
  /* Set one field's rank. Without ties the field that held that rank takes the old rank of the
     moved one (a swap); when one field is left unranked it gets the one rank left. */
  function setRank(list, field, rank) {
    const form = list.closest("form");
    const allowTies = form && form.dataset.allowTies === "1";
    const ranks = readRanks(list);
    const n = Object.keys(ranks).length;
    if (!(field in ranks) || rank < 1 || rank > n) return false;
    const old = ranks[field];
    if (!allowTies) {
      Object.keys(ranks).forEach(function (f) { if (f !== field && ranks[f] === rank) ranks[f] = old; });
    }
    ranks[field] = rank;
    if (!allowTies) {
      const unranked = Object.keys(ranks).filter(function (f) { return ranks[f] == null; });
      if (unranked.length === 1) {
        const used = new Set(Object.values(ranks).filter(function (r) { return r != null; }));
        for (let k = 1; k <= n; k++) { if (!used.has(k)) { ranks[unranked[0]] = k; break; } }
      }
    }
    writeRanks(list, ranks);
    return true;
  }
  function ranksFromOrder(list) {
    const ranks = {};
    list.querySelectorAll(".rank-item").forEach(function (li, i) { ranks[li.dataset.field] = i + 1; });
    writeRanks(list, ranks);
  }

  // --- the selected response -----------------------------------------------------------------
  function cards(form) { return Array.from(form.querySelectorAll(".response-card")); }
  function activeField(form) {
    const el = document.activeElement;
    const holder = el && el.closest && el.closest("[data-field]");
    if (holder && form.contains(holder)) return holder.dataset.field;
    const active = form.querySelector(".response-card.is-active");
    return active ? active.dataset.field : null;
  }
  function activate(form, field, focus) {
    cards(form).forEach(function (c) { c.classList.toggle("is-active", c.dataset.field === field); });
    form.querySelectorAll(".rank-item").forEach(function (li) { li.classList.toggle("is-active", li.dataset.field === field); });
    if (focus) {
      const card = form.querySelector('.response-card[data-field="' + CSS.escape(field) + '"]');
      if (card) card.focus({ preventScroll: false });
    }
  }
  function moveActive(form, step) {
    const list = cards(form);
    if (!list.length) return;
    const cur = list.findIndex(function (c) { return c.dataset.field === activeField(form); });
    const next = list[(cur + step + list.length) % list.length];
    activate(form, next.dataset.field, true);
  }
  function nextUnranked(form, list, after) {
    const ranks = readRanks(list);
    const order = cards(form).map(function (c) { return c.dataset.field; });
    const start = order.indexOf(after);
    for (let i = 1; i <= order.length; i++) {
      const f = order[(start + i) % order.length];
      if (ranks[f] == null) return f;
    }
    return order[(start + 1) % order.length];
  }

  // --- clicks ----------------------------------------------------------------------------------
  document.addEventListener("click", function (e) {
    const chip = e.target.closest(".rank-chip");
    const form = annotateForm();
    if (chip && form) {
      const card = chip.closest(".response-card");
      const list = form.querySelector(".rank-list");
      if (list && card) {
        setRank(list, card.dataset.field, parseInt(chip.dataset.rankSet, 10));
        activate(form, card.dataset.field, false);
        card.focus({ preventScroll: true });  // so Enter submits and digits keep working
      }
      return;
    }
    const holder = e.target.closest(".response-card, .rank-item");
    if (holder && form && form.contains(holder)) activate(form, holder.dataset.field, false);
  });

  // --- keyboard --------------------------------------------------------------------------------
  function isTyping(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") return !["radio", "checkbox", "button", "submit", "hidden"].includes(el.type);
    return false;
  }
  function clickAction(form, action) {
    // a key pressed right after a swap can come before htmx has wired the new form: wire it now,
    // so the answer still goes through htmx (no page load; the notice and its Undo show)
    if (window.htmx) htmx.process(form);
    const btn = form.querySelector('[data-action="' + action + '"]');
    if (btn && !btn.disabled) { btn.click(); return true; }
    return false;
  }
  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented) return;
    const mod = e.ctrlKey || e.metaKey;
    if (mod && (e.key === "z" || e.key === "Z") && !e.shiftKey && !isTyping(e.target) && undoDiscard()) {
      e.preventDefault();  // (also on the "all done" panel, after discarding the last record)
      return;
    }
    const form = annotateForm();
    if (!form) return;
    if (mod && (e.key === "s" || e.key === "S")) {
      e.preventDefault();
      clickAction(form, "draft");  // (no drafts when editing an answer from the history)
      return;
    }
    if (mod && e.key === "Enter") { e.preventDefault(); clickAction(form, "submit"); return; }
    if (isTyping(e.target) || mod || e.altKey) return;
    // a panel toggle (guidelines, shortcuts, a judge's rationale) keeps focus after a click: Enter
    // there still submits; Space opens or closes it
    const onToggle = e.target.closest && e.target.closest("summary, [aria-expanded]");
    const onControl = !onToggle && e.target.closest && e.target.closest("button, a");
    if (e.key === "Enter") {
      if (onControl) return;  // Enter on a focused button or link does what that control does
      e.preventDefault();
      clickAction(form, "submit");
    } else if (e.key === "Backspace" || e.key === "Delete") {
      e.preventDefault();
      clickAction(form, "discard");
    } else if (/^[1-9]$/.test(e.key)) {
      const holder = e.target.closest && e.target.closest(".question[data-kind=ranking]");
      const list = (holder && holder.querySelector(".rank-list")) || form.querySelector(".rank-list");
      if (!list) return;
      const field = activeField(form) || (cards(form)[0] && cards(form)[0].dataset.field);
      if (!field) return;
      e.preventDefault();
      if (setRank(list, field, parseInt(e.key, 10))) {
        const inList = e.target.closest && e.target.closest(".rank-item");
        if (!inList) activate(form, nextUnranked(form, list, field), document.activeElement && document.activeElement.classList.contains("response-card"));
      }
    } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      if (e.target.closest && e.target.closest(".choice")) return;  // radios use arrows themselves
      e.preventDefault();
      moveActive(form, e.key === "ArrowRight" ? 1 : -1);
    }
  });

  // --- undo a discard (the notice's Undo button, while the notice shows) -------------------------
  function undoDiscard() {
    const btn = document.querySelector("#annotate-panel [data-toast]:not(.toast-hide) [data-undo]");
    if (!btn || btn.disabled) return false;
    if (window.htmx) htmx.process(btn);  // (see clickAction)
    btn.click();
    return true;
  }

  // --- the browser's Back: the record just answered ----------------------------------------------
  /* After a submit or discard the next record is swapped in without a page load; the history entry
     of the answered record is turned into its history page and a new entry holds the annotate page,
     so Back shows the record just done (to change it), as the history view does. */
  function historyStep(panel) {
    const done = panel.dataset.doneUrl, here = panel.dataset.annotateUrl;
    if (!done || !here || !window.history.pushState) return;
    history.replaceState({ preflab: "done" }, "", done);
    history.pushState({ preflab: "annotate" }, "", here);
  }
  window.addEventListener("popstate", function (e) {
    if (e.state && e.state.preflab) window.location.reload();  // load the page of that entry
  });
  function historyCheck() {
    // a Back pressed before this script ran (a quick second Back) changed the address only: the
    // page shown must be the one of the address (a record's history page, or the annotate page)
    if (!(history.state && history.state.preflab)) return;
    const m = location.pathname.match(/\/history\/(\d+)\/$/);
    const form = annotateForm();
    const shown = form && form.dataset.mode === "history" ? form.dataset.record : null;
    const key = "preflab:history-reload";
    if ((m ? m[1] : null) === shown) { sessionStorage.removeItem(key); return; }
    if (sessionStorage.getItem(key) === location.href) return;  // once, never a loop
    sessionStorage.setItem(key, location.href);
    window.location.reload();
  }

  // --- htmx wiring -------------------------------------------------------------------------------
  // <body hx-headers> carries the CSRF token of the page that was loaded first; Django rotates the
  // token at login, so send the current one from the cookie when there is one.
  document.addEventListener("htmx:configRequest", function (e) {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (m && e.detail.verb !== "get") e.detail.headers["X-CSRFToken"] = decodeURIComponent(m[1]);
  });
  document.addEventListener("htmx:configRequest", function (e) {
    const form = e.detail.elt.closest ? e.detail.elt.closest("#annotate-form") : null;
    if (!form) return;
    const delta = Math.max(0, clockElapsed() - clock.sent);
    e.detail.parameters["duration"] = delta.toFixed(2);
    e.detail.elt.__pfDelta = delta;
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    const elt = e.detail.elt;
    if (elt && elt.__pfDelta !== undefined) {
      if (e.detail.successful) clock.sent += elt.__pfDelta;
      delete elt.__pfDelta;
    }
  });
  document.addEventListener("submit", function (e) {
    // without htmx (or JavaScript errors elsewhere) the plain form post still carries the time
    const form = e.target;
    if (form.id === "annotate-form") {
      const input = form.querySelector("input[name=duration]");
      if (input) input.value = Math.max(0, clockElapsed() - clock.sent).toFixed(2);
    }
  }, true);
  document.addEventListener("htmx:beforeRequest", function (e) {
    const elt = e.detail.elt;
    // polling that only matters on screen (the dashboard's figures) skips its turns while the tab is hidden
    if (elt && elt.hasAttribute && elt.hasAttribute("data-poll-when-visible") && document.visibilityState !== "visible") {
      e.preventDefault();
      return;
    }
    if (elt && elt.hasAttribute && elt.hasAttribute("data-autosave")) {
      const s = document.getElementById("save-state");
      if (s) { s.className = "save-state saving"; s.lastElementChild.textContent = "Saving draft…"; }
    }
  });
  function formProblem(elt, text) {
    const form = elt && elt.closest ? elt.closest("#annotate-form") : null;
    const box = form && form.querySelector(".form-errors");
    if (box) box.textContent = text;
  }
  document.addEventListener("htmx:responseError", function (e) {
    const elt = e.detail.elt;
    const status = e.detail.xhr.status;
    const s = document.getElementById("save-state");
    if (elt && (elt.hasAttribute("data-autosave") || elt.dataset.action === "draft")) {
      if (s) { s.className = "save-state error"; s.lastElementChild.textContent = "Could not save the draft (" + status + ")"; }
      return;
    }
    formProblem(elt, status === 403 ? "Not saved: the server refused it (403). Your session may have ended — log in again in another tab, then retry."
      : "Not saved: the server answered " + status + ". Your answers are still here; try again.");
  });
  document.addEventListener("htmx:sendError", function (e) {
    const s = document.getElementById("save-state");
    if (s) { s.className = "save-state error"; s.lastElementChild.textContent = "Offline? Not saved yet — your answers stay on screen."; }
    formProblem(e.detail.elt, "Could not reach the server. Your answers are still here; try again when you are back online.");
  });

  // --- small behaviours declared in the markup (the CSP allows no inline handlers) ---------------
  document.addEventListener("change", function (e) {
    const el = e.target;
    if (el.hasAttribute && el.hasAttribute("data-submit-on-change") && el.form) el.form.requestSubmit();
  });
  document.addEventListener("click", function (e) {
    const el = e.target;
    if (el.hasAttribute && el.hasAttribute("data-select-on-click") && el.select) el.select();
  });

  function initPanel(root) {
    root.querySelectorAll(".rank-list").forEach(function (list) {
      if (list.__sortable || typeof Sortable === "undefined") return;
      list.__sortable = Sortable.create(list, {
        animation: 150, forceFallback: true, fallbackTolerance: 3, draggable: ".rank-item",
        onEnd: function () { ranksFromOrder(list); },
      });
    });
    const form = root.id === "annotate-form" ? root : root.querySelector && root.querySelector("#annotate-form");
    if (form && clock.record !== form.dataset.record) clockStart(form.dataset.record);
    root.querySelectorAll("[data-remember]").forEach(function (d) {
      if (d.__remembered) return;  // (the guidelines are kept across swaps: wired once)
      d.__remembered = true;
      const key = "preflab:" + d.dataset.remember;
      const saved = localStorage.getItem(key);
      if (saved !== null) d.open = saved === "1";
      d.addEventListener("toggle", function () { localStorage.setItem(key, d.open ? "1" : "0"); });
    });
    root.querySelectorAll("[data-toast]").forEach(function (t) {
      // a notice with an Undo stays a few seconds longer, long enough to use it
      setTimeout(function () { t.classList.add("toast-hide"); }, t.querySelector("[data-undo]") ? 6000 : 2200);
    });
    if (root.id === "annotate-panel") historyStep(root);
  }
  function boot() {
    historyCheck();
    if (window.htmx) htmx.onLoad(initPanel); else initPanel(document);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();

  window.preflab = { setRank: setRank, clockElapsed: clockElapsed, isTyping: isTyping };
})();
