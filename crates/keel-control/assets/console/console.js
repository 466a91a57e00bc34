// Keel console: keeps the Now page current from its one event stream (/ui/events).
// No framework, no build step: this file is served as written, from the binary.
// Every value from the server is put in the page as text (textContent), never as HTML.
"use strict";

(function () {
  // No red: red means "wrong" on this page (alerts, OUTSIDE, bad backends).
  const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const BAR_WIDTH = 600;
  const BAR_HEIGHT = 22;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  function colour(name) {
    let h = 0;
    for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }

  function percent(x) {
    return (x * 100).toFixed(1) + " %";
  }

  function renderGeneration(g) {
    const p = document.getElementById("generation");
    if (!p) return;
    p.replaceChildren();
    if (!g) {
      p.textContent = "No generation serves yet.";
      return;
    }
    p.append("Generation ");
    p.append(el("strong", g.id, "gen-id"));
    const flags = [];
    if (g.known_good) flags.push("known-good");
    if (g.forced) flags.push("FORCED");
    p.append(" serves since " + g.active_since + ", applied by " + g.author + ": \u201c" + g.message + "\u201d" +
      (flags.length ? " [" + flags.join(", ") + "]" : "") + ".");
  }

  function renderAlerts(alerts, total) {
    const box = document.getElementById("alerts");
    if (!box) return;
    box.replaceChildren();
    if (!alerts.length) {
      box.append(el("p", "No open alerts."));
      return;
    }
    const list = el("ul");
    for (const a of alerts) {
      const li = el("li", null, "alert " + a.severity);
      li.append(el("strong", a.severity.toUpperCase()), " " + a.time + " \u2014 " + a.summary + " ");
      li.append(el("em", "(blames generation " + a.generation + ", " + a.detector + ")"));
      list.append(li);
    }
    box.append(list);
    if (total > alerts.length) box.append(el("p", "and " + (total - alerts.length) + " more"));
  }

  function renderCanary(c) {
    const p = document.getElementById("canary");
    if (!p) return;
    p.textContent = c ? "Canary: generation " + c.generation + " takes " + (c.permille / 10).toFixed(1) + " % of requests." : "";
  }

  function renderRoutes(data) {
    const body = document.getElementById("routes");
    const note = document.getElementById("routes-note");
    if (!body) return;
    body.replaceChildren();
    if (!data.measured) {
      const tr = el("tr");
      const td = el("td", "Measuring\u2026");
      td.colSpan = 6;
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const r of data.routes) {
      const tr = el("tr");
      tr.append(el("td", r.name), el("td", r.host), el("td", r.service), el("td", r.rps.toFixed(1)),
        el("td", r.error_rate === null ? "\u2014" : percent(r.error_rate)),
        el("td", r.p99_ms === null ? "\u2014" : "\u2264 " + r.p99_ms + " ms"));
      body.append(tr);
    }
    if (note) {
      note.textContent = data.routes_total > data.routes.length
        ? "The busiest " + data.routes.length + " of " + data.routes_total + " routes, last second. "
        : data.routes_total + (data.routes_total === 1 ? " route" : " routes") + ", last second. ";
      const all = el("a", "Every route, page by page \u2192");
      all.href = "/ui/routes";
      note.append(all);
    }
  }

  // One host: a bar split by service share, with each intent's band as a bracket
  // under the bar, and the same facts in words beside it.
  function renderHost(h) {
    const fig = el("figure", null, "host");
    fig.append(el("figcaption", h.host + " \u2014 " + h.rps.toFixed(1) + " requests/s"));
    const height = BAR_HEIGHT + 14 * (h.intents.length + 1);
    const chart = svg("svg", { width: BAR_WIDTH, height: height, viewBox: "0 0 " + BAR_WIDTH + " " + height, role: "img",
      "aria-label": "traffic share of " + h.host });
    chart.append(svg("rect", { x: 0, y: 0, width: BAR_WIDTH, height: BAR_HEIGHT, fill: "#eee", stroke: "#999" }));
    let x = 0;
    for (const s of h.shares) {
      const w = s.share * BAR_WIDTH;
      const seg = svg("rect", { x: x, y: 0, width: Math.max(w, 0), height: BAR_HEIGHT, fill: colour(s.service) });
      const title = svg("title", {});
      title.textContent = s.service + " " + percent(s.share);
      seg.append(title);
      chart.append(seg);
      x += w;
    }
    h.intents.forEach((intent, i) => {
      const y = BAR_HEIGHT + 8 + 14 * i;
      const lo = (intent.min === null ? 0 : intent.min) * BAR_WIDTH;
      const hi = (intent.max === null ? 1 : intent.max) * BAR_WIDTH;
      const stroke = colour(intent.service);
      chart.append(svg("line", { x1: lo, y1: y, x2: hi, y2: y, stroke: stroke, "stroke-width": 3 }));
      chart.append(svg("line", { x1: lo, y1: y - 6, x2: lo, y2: y + 3, stroke: stroke, "stroke-width": 2 }));
      chart.append(svg("line", { x1: hi, y1: y - 6, x2: hi, y2: y + 3, stroke: stroke, "stroke-width": 2 }));
    });
    fig.append(chart);
    const words = el("ul");
    for (const s of h.shares) {
      const li = el("li");
      const swatch = el("span", "\u25a0 ", "swatch");
      swatch.style.color = colour(s.service);
      li.append(swatch, s.service + ": " + percent(s.share));
      words.append(li);
    }
    if (!h.shares.length) words.append(el("li", "no traffic in the last second"));
    for (const intent of h.intents) {
      const share = (h.shares.find((s) => s.service === intent.service) || { share: 0 }).share;
      const lo = intent.min === null ? 0 : intent.min;
      const hi = intent.max === null ? 1 : intent.max;
      const inside = !h.shares.length || (share >= lo && share <= hi);
      const li = el("li", null, inside ? "within" : "outside");
      li.append((inside ? "within" : "OUTSIDE") + ": intent " + intent.service +
        (intent.path_prefix ? " under " + intent.path_prefix : "") + " between " + percent(lo) + " and " + percent(hi) +
        " (now " + percent(share) + ")");
      words.append(li);
    }
    fig.append(words);
    return fig;
  }

  function renderShares(hosts) {
    const box = document.getElementById("shares");
    if (!box) return;
    box.replaceChildren();
    if (!hosts.length) box.append(el("p", "No traffic and no intents yet."));
    for (const h of hosts) box.append(renderHost(h));
  }

  // What a misidentified backend claims to be (topology.rs words it the same way).
  function claim(b) {
    const span = el("span", null, "claim");
    if (b.claims && b.identity_seen !== undefined) {
      span.append("claims to be service ", el("strong", b.claims), " (identity \u201c" + b.identity_seen + "\u201d)");
    } else if (b.identity_seen !== undefined && b.identity_seen !== null) {
      span.append("answers as \u201c" + b.identity_seen + "\u201d, no service of this config");
    } else {
      span.append("answers without an identity");
    }
    return span;
  }

  const OUT_OF_TRAFFIC = ["unhealthy", "misidentified", "ejected"];
  const STATE_ORDER = ["healthy", "unknown", "unhealthy", "misidentified", "ejected"];

  // A large pool in one line (topology.rs words it the same way).
  function summary(pool) {
    const counts = STATE_ORDER
      .map((state) => [state, pool.backends.filter((b) => b.state === state).length])
      .filter(([, n]) => n > 0)
      .map(([state, n]) => n + " " + state);
    const listed = pool.backends.some((b) => OUT_OF_TRAFFIC.includes(b.state)) ? "; those out of traffic:" : "";
    return el("span", "\u2014 " + pool.backends.length + " backends: " + counts.join(", ") + listed, "summary");
  }

  // Topology: services -> pools -> backends, the state as a word beside its colour.
  function renderTopology(pools, poolRps) {
    const box = document.getElementById("topology");
    if (!box || !pools) return;
    const listMax = Number(box.dataset.listMax || "12");
    box.replaceChildren();
    const services = [];
    for (const p of pools) if (!services.includes(p.service)) services.push(p.service);
    for (const service of services) {
      const section = el("section", null, "service");
      section.append(el("h2", "service " + service));
      const list = el("ul");
      for (const pool of pools.filter((p) => p.service === service)) {
        const li = el("li");
        li.append("pool ", el("strong", pool.name));
        const rps = poolRps && poolRps[pool.name];
        li.append(" \u2014 " + (rps === undefined ? "0.0" : rps.toFixed(1)) + " requests/s");
        const many = pool.backends.length > listMax;
        if (many) li.append(" ", summary(pool));
        const backends = el("ul");
        for (const b of pool.backends) {
          if (many && !OUT_OF_TRAFFIC.includes(b.state)) continue;
          const item = el("li", null, "backend state-" + b.state);
          const dot = el("span", "\u25cf", "dot");
          dot.setAttribute("aria-hidden", "true");
          item.append(dot, " ", el("strong", b.state), " " + b.addr);
          if (b.state === "misidentified") item.append(" ", claim(b));
          item.append(" \u2014 " + b.in_flight + " in flight, " + b.queued + " queued");
          backends.append(item);
        }
        li.append(backends);
        list.append(li);
      }
      section.append(list);
      box.append(section);
    }
  }

  function connect() {
    const live = document.getElementById("live");
    if (!live || !window.EventSource) return;
    const source = new EventSource("/ui/events");
    source.addEventListener("now", (event) => {
      const data = JSON.parse(event.data);
      renderGeneration(data.generation);
      renderAlerts(data.alerts, data.alerts_total);
      renderCanary(data.canary);
      renderRoutes(data);
      renderShares(data.hosts);
      renderTopology(data.pools, data.pool_rps);
      live.textContent = "Live updates: on (" + new Date().toLocaleTimeString() + ")";
    });
    source.addEventListener("error", () => {
      live.textContent = source.readyState === EventSource.CLOSED
        ? "Live updates: stopped (signed out, or too many open pages). Reload the page."
        : "Live updates: reconnecting\u2026";
    });
  }

  connect();
})();
