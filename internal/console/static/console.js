// cairn console: a little JavaScript of its own. Everything works without
// it; it adds the copy button, the column chooser and "Add attribute".
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var copy = document.getElementById("copy-record");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      var text = document.getElementById(copy.dataset.copy).textContent;
      navigator.clipboard.writeText(text).then(function () {
        document.getElementById("copy-status").textContent = "Copied.";
      }, function () {
        document.getElementById("copy-status").textContent = "Could not copy: select the text instead.";
      });
    });
  }
  var table = document.getElementById("events-table");
  var chooser = document.getElementById("column-chooser");
  if (table && chooser) {
    var hidden = {};
    try { hidden = JSON.parse(localStorage.getItem("cairn-hidden-columns") || "{}"); } catch (e) { hidden = {}; }
    var apply = function () {
      table.querySelectorAll("[data-col]").forEach(function (cell) {
        cell.classList.toggle("hide-col", !!hidden[cell.dataset.col]);
      });
    };
    chooser.querySelectorAll("input[data-col]").forEach(function (box) {
      box.checked = !hidden[box.dataset.col];
      box.addEventListener("change", function () {
        if (box.checked) { delete hidden[box.dataset.col]; } else { hidden[box.dataset.col] = true; }
        try { localStorage.setItem("cairn-hidden-columns", JSON.stringify(hidden)); } catch (e) { /* private mode */ }
        apply();
      });
    });
    apply();
  }
  var add = document.getElementById("attr-add");
  var proto = document.getElementById("attr-new");
  if (add && proto) {
    add.hidden = false;
    var n = 0;
    add.addEventListener("click", function () {
      n++;
      var row = proto.cloneNode(true);
      row.removeAttribute("id");
      row.querySelectorAll("[id]").forEach(function (el) { el.id = el.id + "-" + n; });
      row.querySelectorAll("label").forEach(function (l) { l.htmlFor = l.htmlFor + "-" + n; });
      row.querySelector("input").value = "";
      proto.parentNode.insertBefore(row, add);
      row.querySelector("select").focus();
    });
  }
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.sample").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var t = document.getElementById("statement");
      t.value = b.dataset.sql;
      t.focus();
    });
  });
  var refresh = document.getElementById("query-refresh");
  if (refresh && refresh.dataset.auto) {
    setTimeout(function () { location.replace(refresh.href); }, 1000);
  }
});
document.addEventListener("submit", function (e) {
  var b = e.submitter;
  if (b && b.dataset.confirm && !window.confirm(b.dataset.confirm)) {
    e.preventDefault();
  }
});
