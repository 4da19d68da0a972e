// Cornetta widget loader: draws the chat button in a Shadow DOM and starts the app on intent.
// This is the only file a visitor downloads before touching the button (the facade
// pattern): it validates the script tag, draws an accessible launcher inside an open Shadow
// DOM, and fetches the Leptos/wasm app only on intent (pointer enter, focus, touch start,
// or when the browser is idle with data-preload="idle"). A click before the app is ready is
// remembered and opens the panel as soon as it is. `cargo xtask widget` replaces the
// __CORNETTA_*__ names with the content-hashed file names and minifies this file.
//
// Classic script on purpose: `document.currentScript` (our data-* attributes) is null in a
// module script. The one global is `window.Cornetta` (documented in widget/README.md).
(function (window, document) {
  var GLUE = "__CORNETTA_GLUE__";
  var WASM = "__CORNETTA_WASM__";
  var VERSION = "__CORNETTA_VERSION__";
  // The launcher's accessible name; the panel's strings live in the app.
  var LABELS = {
    en: "Chat with us on WhatsApp",
    it: "Scrivici su WhatsApp",
    es: "Escríbenos por WhatsApp",
    pt: "Fale connosco no WhatsApp",
    fr: "Écrivez-nous sur WhatsApp",
    de: "Schreiben Sie uns auf WhatsApp",
    ar: "تحدث معنا على واتساب"
  };
  var script = document.currentScript;
  var nav = window.navigator;

  function fail(message) {
    // One clear line naming what is wrong; the page is otherwise left untouched.
    console.error("Cornetta: " + message);
  }

  if (!script || !script.src) {
    return fail("load widget.js with <script src async>, not as a module");
  }
  if (window.Cornetta) {
    return fail("widget.js is included twice");
  }
  var base = new URL(".", script.src).href;

  function attr(name, pattern, expected, fallback) {
    var value = script.getAttribute("data-" + name);
    if (value == null || value === "") return fallback;
    if (!pattern.test(value)) {
      throw "data-" + name + "=\"" + value + "\" must be " + expected;
    }
    return value;
  }

  var opts;
  try {
    var site = attr("site", /^pk_[a-z0-9]{16,64}$/, "a site key (pk_…)");
    var phone = attr("phone", /^[\s()+.\-\d]{7,40}$/, "+39 333 1234567");
    var digits = phone && phone.replace(/\D/g, "").replace(/^00/, "");
    if (phone && (!/^\s*\(?\s*(\+|00)/.test(phone) || !/^[1-9]\d{6,14}$/.test(digits))) {
      throw "data-phone=\"" + phone + "\" must start with + and the country code";
    }
    if (!site && !phone) {
      throw "data-site or data-phone is missing";
    }
    opts = {
      api: base,
      site: site,
      phone: phone,
      digits: digits,
      business: attr("business", /^[^<>]{1,200}$/, "≤ 200 characters, no < >"),
      text: attr("text", /^[\s\S]{1,1000}$/, "≤ 1000 characters"),
      greeting: attr("greeting", /^[\s\S]{1,300}$/, "≤ 300 characters"),
      consent: attr("consent", /^(required|optional)$/, "required|optional", "required"),
      lang: attr("lang", /^[a-zA-Z]{2}(-[a-zA-Z0-9]{2,8})?$/, "a language code (en, pt-BR)"),
      color: attr("color", /^#([0-9a-fA-F]{3}){1,2}$/, "#rrggbb", "#0a7c55"),
      position: attr("position", /^(left|right)$/, "left|right", "right"),
      offset: +attr("offset", /^\d{1,3}$/, "0-999", "20"),
      preload: attr("preload", /^(intent|idle)$/, "intent|idle", "intent"),
      openAfter: +attr("open-after", /^\d{1,4}$/, "seconds", "0"),
      openScroll: +attr("open-scroll", /^(100|\d{1,2})$/, "1-100", "0"),
      openExit: attr("open-exit", /^(true|false)$/, "true|false", "false") === "true",
      show: attr("show-paths", /^[^\s<>]{1,500}$/, "/shop/*,/contact"),
      hide: attr("hide-paths", /^[^\s<>]{1,500}$/, "/shop/*,/contact"),
      devices: attr("devices", /^(all|mobile|desktop)$/, "all|mobile|desktop", "all"),
      qr: attr("qr", /^(true|false)$/, "true|false", "true") === "true"
    };
  } catch (message) {
    return fail(message);
  }

  // The visitor's languages, best first; the UI uses the first one we translate.
  var wanted = (opts.lang ? [opts.lang] : []).concat(nav.languages || [nav.language || "en"]);
  var prefs = [];
  wanted.forEach(function (lang) {
    lang = String(lang).slice(0, 2).toLowerCase();
    if (prefs.indexOf(lang) < 0) prefs.push(lang);
  });
  var ui = prefs.filter(function (lang) { return LABELS[lang]; })[0] || "en";
  opts.ui = ui;
  opts.langs = prefs.join(",");
  opts.mobile = /Mobi|Android/i.test(nav.userAgent) || (window.matchMedia && matchMedia("(pointer: coarse)").matches);

  // Show/hide by path pattern (`*` matches anything) and device.
  function matches(list) {
    return list.split(",").some(function (p) {
      return new RegExp("^" + p.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*") + "$").test(location.pathname);
    });
  }
  if ((opts.show && !matches(opts.show)) || (opts.hide && matches(opts.hide)) ||
      (opts.devices === "mobile" && !opts.mobile) || (opts.devices === "desktop" && opts.mobile)) {
    return;
  }

  function emit(name, detail) {
    // Analytics hooks: a CustomEvent on window, and GTM's dataLayer when the page has one.
    // No third-party calls of our own.
    detail = detail || {};
    window.dispatchEvent(new CustomEvent("cornetta:" + name, { detail: detail }));
    var layer = window.dataLayer;
    if (layer && layer.push) layer.push({ event: "cornetta:" + name, cornetta: detail });
  }
  opts.emit = emit;

  var host = document.createElement("cornetta-widget");
  var root = host.attachShadow({ mode: "open" });
  // A constructed stylesheet: a strict `style-src 'self'` blocks an inline <style> in the
  // shadow root but not adoptedStyleSheets (CSP3 applies to markup, not to the CSSOM).
  function css(text) {
    if (root.adoptedStyleSheets && window.CSSStyleSheet) {
      try {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(text);
        root.adoptedStyleSheets = root.adoptedStyleSheets.concat([sheet]);
        return;
      } catch (e) { /* older engines: fall through */ }
    }
    var style = document.createElement("style");
    style.textContent = text;
    root.appendChild(style);
  }
  opts.css = css;
  var side = opts.position;
  css(
    ":host{all:initial!important;position:fixed!important;z-index:2147483000!important;bottom:" + opts.offset + "px!important;" + side + ":" + opts.offset + "px!important;display:block!important;" +
    "--c-accent:" + opts.color + ";color-scheme:light dark}" +
    ".launcher{display:grid;place-items:center;width:56px;height:56px;margin:0;padding:0;border:0;border-radius:50%;" +
    "background:var(--c-accent);color:#fff;cursor:pointer;box-shadow:0 4px 14px #0006;transition:transform .15s}" +
    ".launcher:hover{transform:scale(1.06)}.launcher:focus-visible{outline:3px solid #1a1a1a;outline-offset:3px;box-shadow:0 0 0 6px #fff}" +
    ".launcher svg{width:30px;height:30px;fill:currentColor}" +
    "@media (prefers-reduced-motion:reduce){*{transition:none!important}}"
  );
  var ICON = "<svg viewBox=\"0 0 24 24\" aria-hidden=\"true\"><path d=\"M12 2C6.5 2 2 6 2 11c0 2.4 1 4.6 2.8 6.3L4 22l4.9-2.1c1 .3 2 .4 3.1.4 5.5 0 10-4 10-9S17.5 2 12 2zm-4 8h8v2H8v-2zm0-3h8v2H8V7zm0 6h5v2H8v-2z\"/></svg>";
  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher";
  launcher.setAttribute("data-testid", "cornetta-launcher");
  launcher.setAttribute("aria-label", LABELS[ui] + (opts.business ? " – " + opts.business : ""));
  launcher.setAttribute("aria-haspopup", "dialog");
  launcher.setAttribute("aria-expanded", "false");
  launcher.innerHTML = ICON;
  var mount = document.createElement("div");
  root.appendChild(mount);
  root.appendChild(launcher);
  host.setAttribute("data-side", side);
  if (ui === "ar") host.setAttribute("dir", "rtl");

  var app = null;      // the started app: { open(), close(), toggle() }
  var loading = null;  // the promise of it
  var pending = null;  // "open" or "toggle" asked before the app was ready

  function wasmWorks() {
    // Compiling the smallest module throws when WebAssembly is missing or when the page's
    // CSP lacks 'wasm-unsafe-eval'; then the visitor gets a plain link instead.
    try {
      return typeof WebAssembly === "object" && !!new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    } catch (e) {
      return false;
    }
  }

  function waLink(number, template) {
    // The same encoding as the server's WaLink: everything outside RFC 3986 unreserved.
    var text = (template || "").replace(/\{title\}/g, document.title).replace(/\{url\}/g, location.href)
      .replace(/\s*\(?ref\s*\{ref\}\)?|\{ref\}|\{agent\}/g, "");
    return "https://wa.me/" + number + (text ? "?text=" + encodeURIComponent(text).replace(/[!'()*]/g, function (c) {
      return "%" + c.charCodeAt(0).toString(16).toUpperCase();
    }) : "");
  }

  function fallback(why) {
    // Without WebAssembly the button becomes a plain link to the chat: the visitor can
    // always reach the business (no consent is recorded; the chat itself is their choice).
    if (launcher.tagName === "A") return;
    var focused = root.activeElement === launcher;
    function draw(number, template) {
      var link = document.createElement("a");
      link.className = "launcher";
      link.href = waLink(number, template);
      link.target = "_blank";
      link.rel = "noopener";
      link.setAttribute("data-testid", "cornetta-fallback");
      link.setAttribute("aria-label", launcher.getAttribute("aria-label"));
      link.innerHTML = ICON;
      root.replaceChild(link, launcher);
      launcher = link;
      if (focused) link.focus();
      emit("fallback", { reason: why });
    }
    if (opts.digits) return draw(opts.digits, opts.text);
    fetch(base + "v1/sites/" + opts.site + "/widget?lang=" + encodeURIComponent(opts.langs))
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (c) { draw(c.phone.slice(1), opts.text || c.text); })
      .catch(function (e) { fail("the chat is unavailable (" + e + ")"); });
  }

  function load() {
    if (loading) return loading;
    loading = import(base + "widget/" + GLUE)
      .then(function (glue) {
        return glue.default({ module_or_path: base + "widget/" + WASM }).then(function () {
          app = glue.start(root, mount, launcher, opts);
          emit("ready", { version: VERSION });
          if (pending) {
            app[pending]();
            pending = null;
          }
          return app;
        });
      })
      .catch(function (e) {
        fail("the chat app did not start (" + e + ")");
        fallback(String(e));
      });
    return loading;
  }

  function ask(action) {
    if (app) return app[action]();
    if (launcher.tagName === "A") return;
    pending = action === "close" ? null : action;
    load();
  }

  if (!wasmWorks()) {
    fallback("WebAssembly is missing or blocked by the page's CSP");
  } else {
    launcher.addEventListener("click", function () { ask("toggle"); });
    ["pointerenter", "focus", "touchstart"].forEach(function (type) {
      launcher.addEventListener(type, load, { once: true, passive: true });
    });
    if (opts.preload === "idle") {
      var idle = function () { (window.requestIdleCallback || setTimeout)(load); };
      if (document.readyState === "complete") idle(); else window.addEventListener("load", idle);
    }
    // Triggers: after N seconds, at N % scroll, on exit intent (desktop), on #chat, and from
    // any element with data-cornetta-open.
    // The visitor did not ask: "show" opens without moving their focus.
    var auto = function () { if (!auto.done) { auto.done = 1; ask("show"); } };
    if (opts.openAfter) setTimeout(auto, opts.openAfter * 1000);
    if (opts.openScroll) {
      window.addEventListener("scroll", function () {
        var el = document.documentElement;
        var max = el.scrollHeight - el.clientHeight;
        if (max > 0 && (el.scrollTop || window.scrollY) / max * 100 >= opts.openScroll) auto();
      }, { passive: true });
    }
    if (opts.openExit && !opts.mobile) {
      document.addEventListener("mouseout", function (e) { if (!e.relatedTarget && e.clientY <= 0) auto(); });
    }
    var hash = function () { if (location.hash === "#chat") ask("open"); };
    window.addEventListener("hashchange", hash);
    hash();
    document.addEventListener("click", function (e) {
      var el = e.target && e.target.closest && e.target.closest("[data-cornetta-open]");
      if (el) {
        e.preventDefault();
        ask("open");
      }
    });
  }

  window.Cornetta = {
    version: VERSION,
    open: function () { ask("open"); },
    close: function () { ask("close"); }
  };
  // An async script may run before <body> exists.
  if (document.body) document.body.appendChild(host);
  else document.addEventListener("DOMContentLoaded", function () { document.body.appendChild(host); });
})(window, document);
