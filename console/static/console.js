// Keyboard shortcuts (no build step, no dependency). Review lane: j/k move between items,
// a accepts, c chooses the category of the current item, o opens its thread. Anywhere: / focuses
// the search of the threads page.
(function () {
  "use strict";
  function typing(target) {
    return target && /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName);
  }
  function items() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-item]"));
  }
  function current() {
    var all = items();
    var active = document.activeElement && document.activeElement.closest("[data-item]");
    return active || all[0] || null;
  }
  function focus(item) {
    if (!item) return;
    items().forEach(function (el) { el.classList.remove("current"); });
    item.classList.add("current");
    item.focus();
    item.scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var item = current();
    var all = items();
    if (event.key === "/") {
      var search = document.getElementById("q");
      if (search) { event.preventDefault(); search.focus(); }
      return;
    }
    if (!all.length) return;
    var index = all.indexOf(item);
    if (event.key === "j") { focus(all[Math.min(all.length - 1, index + 1)]); }
    else if (event.key === "k") { focus(all[Math.max(0, index - 1)]); }
    else if (event.key === "a" && item) {
      var accept = item.querySelector("form[data-accept]");
      if (accept) { event.preventDefault(); accept.requestSubmit(); }
    } else if (event.key === "c" && item) {
      var select = item.querySelector("select[data-category]");
      if (select) { event.preventDefault(); select.focus(); }
    } else if (event.key === "o" && item) {
      var link = item.querySelector("a[data-open]");
      if (link) { window.location.href = link.href; }
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var first = items()[0];
    if (first) { first.classList.add("current"); }
  });
})();
// Enter on a review item's category list submits its correction.
document.addEventListener("keydown", function (event) {
  var target = event.target;
  if (event.key === "Enter" && target && target.matches && target.matches("select[data-category]")) {
    event.preventDefault();
    target.form.requestSubmit();
  }
}, true);
