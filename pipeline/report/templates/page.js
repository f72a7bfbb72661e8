// Renders every article's sentences from the embedded data and filters them in place.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var list = document.getElementById("article-list");
  var fmt = function (p) { return (100 * p).toFixed(0) + "%"; };

  data.articles.forEach(function (article) {
    var node = document.createElement("article");
    node.dataset.date = article.date;
    var heading = document.createElement("h3");
    heading.textContent = article.title || article.article_id;
    var date = document.createElement("span");
    date.className = "date";
    date.textContent = " " + article.date;
    heading.appendChild(date);
    node.appendChild(heading);
    var body = document.createElement("p");
    article.sentences.forEach(function (s) {
      var span = document.createElement("span");
      span.className = "sentence actor-" + s.actor + " stance-" + s.stance;
      span.dataset.actor = s.actor;
      span.dataset.stance = s.stance;
      span.dataset.date = article.date;
      span.title = "actor " + s.actor + " (" + fmt(s.actor_probability) + ") · stance " + s.stance + " (" + fmt(s.stance_probability) + ")";
      span.textContent = s.sentence;
      body.appendChild(span);
      body.appendChild(document.createTextNode(" "));
    });
    node.appendChild(body);
    list.appendChild(node);
  });

  function apply() {
    var actor = document.getElementById("filter-actor").value;
    var stance = document.getElementById("filter-stance").value;
    var from = document.getElementById("filter-from").value;
    var to = document.getElementById("filter-to").value;
    var shown = 0;
    list.querySelectorAll("article").forEach(function (node) {
      var any = false;
      node.querySelectorAll(".sentence").forEach(function (span) {
        var keep = (!actor || span.dataset.actor === actor) && (!stance || span.dataset.stance === stance) &&
          (!from || span.dataset.date >= from) && (!to || span.dataset.date <= to);
        span.hidden = !keep;
        if (keep) { shown += 1; any = true; }
      });
      node.hidden = !any;
    });
    document.getElementById("shown").textContent = shown + " of " + data.sentences + " sentences shown";
  }
  ["filter-actor", "filter-stance", "filter-from", "filter-to"].forEach(function (id) {
    document.getElementById(id).addEventListener("change", apply);
  });
  apply();
})();
