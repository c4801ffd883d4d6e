/* The graded preference question: digits pick a side and a strength (1 = the left response's
   strongest level ... 2N = the right one's strongest), 0 toggles "both are bad". Loaded by the
   question's partial; runs once however often htmx swaps the partial in. Listens in the capture
   phase so a digit meant for this question never reaches the ranking shortcuts of preflab.js. */
(function () {
  "use strict";
  if (window.preflabPreference) return;

  // preflab.js (deferred, so loaded by the time a key is pressed) says when a key is typing text
  function isTyping(el) { return window.preflab.isTyping(el); }

  /* Pick the choice bound to `key` in one preference question; returns whether there was one. */
  function choose(box, key) {
    const input = box.querySelector('[data-key="' + key + '"] input');
    if (!input) return false;
    if (input.type === "checkbox") input.checked = !input.checked;
    else if (input.checked) return true;
    else input.checked = true;
    const q = box.closest(".question");
    if (q) { q.classList.remove("has-error"); const e = q.querySelector(".q-error"); if (e) e.textContent = ""; }
    const form = box.closest("form");
    const general = form && form.querySelector(".form-errors");
    if (general && !form.querySelector(".question.has-error")) general.textContent = "";  // nothing left to fix
    input.dispatchEvent(new Event("change", { bubbles: true }));  // the draft auto-save listens for it
    return true;
  }

  document.addEventListener("keydown", function (e) {
    const form = document.getElementById("annotate-form");
    if (!form || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (!/^[0-9]$/.test(e.key) || isTyping(e.target)) return;
    const here = e.target.closest && e.target.closest(".question");
    let box = here && here.querySelector("[data-preference]");
    if (!box) {
      // outside any question: digits go to the first preference question unless a ranking takes them
      if (form.querySelector(".rank-list")) return;
      box = form.querySelector("[data-preference]");
    }
    if (box && choose(box, e.key)) e.preventDefault();
  }, true);

  window.preflabPreference = { choose: choose };
})();
