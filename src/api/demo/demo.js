"use strict";
// The tagbeez demo page: plain JS against the service's own routes (relative URLs, so the page
// also works under an API Gateway stage prefix). No dependencies, no build step.
(() => {
  const state = {
    tags: [],          // GET / `tags`, in the model's order (their colours follow it)
    thresholds: {},    // GET / `thresholds`
    conversationId: "",
    shop: "",          // the shop this conversation's messages were sent for ("" for none)
    count: 0,          // messages sent in this conversation
    pending: null,     // {text, shop, messageId} of a send whose answer has not come: a retry reuses the id
  };

  const byId = (id) => document.getElementById(id);
  const form = byId("compose");
  const input = byId("message");
  const explainBox = byId("explain");
  const sendButton = byId("send");
  const statusLine = byId("status");
  const errorLine = byId("error");
  const messages = byId("messages");
  const timeline = byId("timeline");
  const shopInput = byId("shop");
  const shopBox = byId("shop-profile");

  // A shop id as the service accepts it (`shop_id`), and where a shop's profile came from.
  const SHOP_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;
  const PROFILE_SOURCES = {
    stored: "profile read from the store",
    cached: "profile from this instance's cache",
    default: "no profile: the model's defaults",
  };

  /** An element: attributes (class, text, data-*, aria-*, ...) and children. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function randomHex(bytes) {
    const b = new Uint8Array(bytes);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  const pct = (p, digits = 1) => `${(p * 100).toFixed(digits)}%`;
  // An occlusion weight: how much removing the word lowers the tag's probability. A confident
  // tag moves little for any one word, so small weights keep one significant digit.
  const weight = (w) => `+${w >= 0.01 ? w.toFixed(2) : w.toPrecision(1)}`;
  const colour = (tag) => {
    const i = state.tags.indexOf(tag);
    return `t${(i < 0 ? state.tags.length : i) % 8}`;
  };

  class ApiFailure extends Error {}

  /** Call the API; a non-2xx answer throws its `{"error": {status, code, message}}` plainly. */
  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiFailure(`The service could not be reached: ${e.message}`);
    }
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const err = json && json.error;
      const retry = response.headers.get("retry-after");
      const after = retry ? ` (retry after ${retry} s)` : "";
      if (err && err.code) {
        throw new ApiFailure(`${err.status || response.status} ${err.code}: ${err.message}${after}`);
      }
      throw new ApiFailure(`${response.status} ${response.statusText}: ${text.slice(0, 300)}${after}`);
    }
    if (json === null) throw new ApiFailure(`${response.status}: the answer is not JSON`);
    return json;
  }

  function showError(message) {
    errorLine.textContent = message;
    errorLine.hidden = !message;
  }

  /** The shop field's id ("" for none), or null (and the error shown) when it is not one. */
  function shopId() {
    const id = shopInput.value.trim();
    const ok = id === "" || SHOP_ID.test(id);
    shopInput.setAttribute("aria-invalid", String(!ok));
    if (!ok) showError("Shop: a shop id is 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'.");
    return ok ? id : null;
  }

  function newConversation() {
    state.conversationId = `demo-${Date.now().toString(36)}-${randomHex(4)}`;
    state.count = 0;
    state.shop = "";
    state.pending = null;
    shopBox.hidden = true;
    byId("conversation-id").textContent = state.conversationId;
    messages.replaceChildren();
    timeline.replaceChildren();
    byId("timeline-empty").hidden = false;
    showError("");
    statusLine.textContent = "";
    input.focus();
  }

  /** The message with its explanation words as <mark>s (offsets in Unicode scalar values). */
  function messageText(text, explanation) {
    const chars = Array.from(text);
    const spans = new Map();
    for (const t of (explanation && explanation.tags) || []) {
      for (const w of t.words || []) {
        const key = `${w.start}:${w.end}`;
        if (!spans.has(key)) spans.set(key, { start: w.start, end: w.end, tags: [] });
        spans.get(key).tags.push({ tag: t.tag, weight: w.weight });
      }
    }
    const p = el("p", { class: "message-text", "data-testid": "message-text" });
    let at = 0;
    for (const s of [...spans.values()].sort((a, b) => a.start - b.start)) {
      if (s.start < at || s.end > chars.length || s.start >= s.end) continue;
      p.append(chars.slice(at, s.start).join(""));
      const why = s.tags.map((t) => `${t.tag} ${weight(t.weight)}`).join(", ");
      p.append(el("mark", {
        class: colour(s.tags[0].tag),
        "data-testid": "explain-word",
        "data-tags": s.tags.map((t) => t.tag).join(" "),
        "data-start": s.start,
        "data-end": s.end,
        title: `raises ${why}`,
      }, chars.slice(s.start, s.end).join("")));
      at = s.end;
    }
    p.append(chars.slice(at).join(""));
    return p;
  }

  /** One line per explained tag: its words and how much each raised it. */
  function explanationLines(explanation) {
    if (!explanation) return null;
    const box = el("div", { "data-testid": "explanation" });
    for (const t of explanation.tags || []) {
      const line = el("p", { class: "why" }, el("span", { class: `swatch ${colour(t.tag)}`, "aria-hidden": "true" }), " ",
        `Why ${t.tag}: `);
      if (!t.words || t.words.length === 0) line.append("no single word raised it");
      (t.words || []).forEach((w, i) => {
        if (i > 0) line.append(", ");
        line.append(el("q", { text: w.word }), ` ${weight(w.weight)}`);
      });
      box.append(line);
    }
    if (explanation.truncated) {
      box.append(el("p", { class: "why", text:
        `Explained by its first ${explanation.explained_words} of ${explanation.words} words.` }));
    }
    return box;
  }

  /** Where a tag's threshold came from (`threshold_sources`), in words. */
  function thresholdSource(source, result) {
    const exp = result.experiment;
    if (source === "profile") return `threshold from shop ${result.shop_id}'s profile`;
    if (source === "variant" && exp) return `threshold from variant ${exp.variant} of experiment ${exp.name}`;
    if (source === "request") return "threshold from this request";
    return "the model's threshold";
  }

  function bars(result) {
    const selected = new Set(result.selected.map((s) => s.tag));
    const disabled = new Set(result.disabled_tags || []);
    const list = el("ul", { class: "bars", "data-testid": "tags", "aria-label": "Tag confidences" });
    for (const s of result.all) {
      const threshold = (result.thresholds && result.thresholds[s.tag]) ?? state.thresholds[s.tag];
      const isSelected = selected.has(s.tag);
      const off = disabled.has(s.tag);
      const source = (result.threshold_sources && result.threshold_sources[s.tag]) || "model";
      const fill = el("span", { class: "fill" });
      fill.style.width = pct(Math.min(1, Math.max(0, s.confidence)), 2);
      const mark = el("span", { class: "mark", "data-testid": "threshold-mark", "data-threshold": threshold });
      mark.style.left = pct(threshold, 2);
      list.append(el("li", {
        class: `bar-row ${colour(s.tag)}${isSelected ? " selected" : ""}${off ? " disabled" : ""}`,
        "data-testid": "tag-row",
        "data-tag": s.tag,
        "data-confidence": s.confidence,
        "data-selected": isSelected ? "true" : "false",
        "data-threshold-source": source,
        "data-disabled": off ? "true" : "false",
      },
      el("span", { class: "name" }, el("span", { class: "swatch", "aria-hidden": "true" }), s.tag),
      el("span", { class: "bar", "aria-hidden": "true" }, fill, mark),
      el("span", { class: "value" }, pct(s.confidence), " ",
        el("span", {
          class: `thr${source === "model" ? "" : " custom"}`,
          "data-testid": "threshold",
          title: off ? "turned off in the shop's profile: never selected" : thresholdSource(source, result),
          text: off ? "off" : `≥ ${pct(threshold, 0)}`,
        }),
        el("span", { class: "visually-hidden", text: off ? " turned off for this shop"
          : isSelected ? " threshold met: selected" : " below threshold" }))));
    }
    return list;
  }

  function stepLine(reply) {
    const tag = reply.conversation_tag;
    const line = el("p", {
      class: "step",
      "data-testid": "step",
    }, "Conversation tag: ");
    if (tag) {
      line.append(el("strong", { "data-testid": "step-conversation-tag", "data-tag": tag.tag, text: tag.tag }),
        ` (window mean ${pct(tag.confidence)}, ${reply.window_size} in window)`);
    } else {
      line.append(el("strong", { "data-testid": "step-conversation-tag", "data-tag": "", text: "none" }),
        " (no tag's window mean clears its threshold)");
    }
    if (reply.switched) {
      line.append(el("span", {
        class: `switch-badge ${colour(tag ? tag.tag : "")}`,
        "data-testid": "step-switched",
        "data-previous-tag": reply.previous_tag ? reply.previous_tag.tag : "",
        text: `⇄ switched from ${reply.previous_tag ? reply.previous_tag.tag : "none"}`,
      }));
    }
    if (reply.duplicate) line.append(" ", el("em", { text: "(a retry: its first answer, replayed)" }));
    return line;
  }

  function timelineStep(n, reply) {
    const tag = reply.conversation_tag;
    const label = tag ? tag.tag : "none";
    const a = el("a", { href: `#message-${n}` },
      el("span", { class: "n", text: String(n) }),
      el("span", { class: tag ? "tag" : "none", text: label }),
      tag ? el("span", { class: "conf", text: pct(tag.confidence, 0) }) : null);
    if (reply.switched) a.append(el("span", { class: "switch-badge", text: "⇄ switched" }));
    return el("li", {
      class: `${tag ? colour(tag.tag) : ""}${reply.switched ? " switched" : ""}`,
      "data-testid": "timeline-step",
      "data-index": n,
      "data-tag": tag ? tag.tag : "",
      "data-switched": reply.switched ? "true" : "false",
      "aria-label": `Message ${n}: ${label}${reply.switched ? `, switched from ${reply.previous_tag ? reply.previous_tag.tag : "none"}` : ""}`,
    }, a);
  }

  function feedbackPart(n, text, messageId, result) {
    const predicted = result.selected.map((s) => s.tag);
    const formId = `feedback-${n}`;
    const toggle = el("button", {
      type: "button", class: "secondary feedback-toggle", "data-testid": "correct-button",
      "aria-expanded": "false", "aria-controls": formId, text: "Correct these tags",
    });
    const fieldset = el("fieldset", {}, el("legend", { text: "The tags this message should have" }));
    for (const tag of state.tags) {
      const box = el("input", { type: "checkbox", name: "tag", value: tag, "data-testid": "feedback-tag" });
      box.checked = predicted.includes(tag);
      fieldset.append(el("label", { class: "check" }, box, el("span", { class: `swatch ${colour(tag)}`, "aria-hidden": "true" }), tag));
    }
    const submit = el("button", { type: "submit", "data-testid": "feedback-submit", text: "Send correction" });
    const result_ = el("p", { class: "feedback-result", role: "status", "data-testid": "feedback-result" });
    const error = el("p", { class: "error", role: "alert", "data-testid": "feedback-error", hidden: true });
    const feedbackForm = el("form", { id: formId, class: "feedback", "data-testid": "feedback-form", hidden: true },
      fieldset, submit, result_, error);
    toggle.addEventListener("click", () => {
      feedbackForm.hidden = !feedbackForm.hidden;
      toggle.setAttribute("aria-expanded", String(!feedbackForm.hidden));
      if (!feedbackForm.hidden) fieldset.querySelector("input").focus();
    });
    feedbackForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const tags = Array.from(fieldset.querySelectorAll("input:checked"), (b) => b.value);
      submit.disabled = true;
      error.hidden = true;
      result_.textContent = "Sending…";
      try {
        const answer = await api("POST", "feedback", {
          message: text, tags, predicted, conversation_id: state.conversationId,
          message_id: messageId, source: "demo",
        });
        result_.dataset.feedbackId = answer.feedback_id;
        result_.replaceChildren("Saved as feedback ", el("code", { text: answer.feedback_id }),
          `: ${answer.tags.length ? answer.tags.join(", ") : "no tag applies"}.`);
      } catch (e) {
        result_.textContent = "";
        error.textContent = e.message;
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    return [toggle, feedbackForm];
  }

  /** The conversation's shop: which, where its profile came from, its experiment's variant. */
  function renderShop(result) {
    const exp = result.experiment;
    shopBox.dataset.shop = result.shop_id || "";
    shopBox.dataset.profile = result.profile;
    if (!result.shop_id) {
      shopBox.replaceChildren("No shop: the model's default thresholds.");
    } else {
      shopBox.replaceChildren("Shop ", el("code", { text: result.shop_id }),
        ` · ${PROFILE_SOURCES[result.profile] || result.profile}`);
      if (exp) {
        shopBox.append(" · ", el("strong", {
          "data-testid": "shop-variant", "data-experiment": exp.name, "data-variant": exp.variant,
          text: `experiment ${exp.name}, variant ${exp.variant}`,
        }));
      }
      if (result.profile_error) {
        shopBox.append(el("span", {
          class: "profile-error", "data-testid": "shop-profile-error", text: result.profile_error,
        }));
      }
    }
    shopBox.hidden = false;
  }

  function renderMessage(n, text, messageId, reply) {
    const result = reply.message_result;
    const item = el("li", {
      id: `message-${n}`,
      class: "message",
      "data-testid": "message",
      "data-index": n,
      "data-message-id": messageId,
      "data-conversation-tag": reply.conversation_tag ? reply.conversation_tag.tag : "",
      "data-switched": reply.switched ? "true" : "false",
      "data-previous-tag": reply.previous_tag ? reply.previous_tag.tag : "",
      "aria-label": `Message ${n}`,
    },
    el("div", { class: "message-head" }, el("span", { class: "n", text: `#${n}` }), messageText(text, result.explanation)),
    bars(result),
    explanationLines(result.explanation),
    stepLine(reply),
    ...feedbackPart(n, text, messageId, result));
    if (result.truncated) item.append(el("p", { class: "hint", text: "The model read only the first 128 tokens." }));
    messages.append(item);
    timeline.append(timelineStep(n, reply));
    byId("timeline-empty").hidden = true;
    item.scrollIntoView({ block: "nearest" });
  }

  async function send() {
    const text = input.value;
    if (text.trim() === "") {
      showError("Type a message first.");
      return;
    }
    const shop = shopId();
    if (shop === null) return;
    if (state.count > 0 && shop !== state.shop) newConversation(); // one shop per conversation
    if (!state.pending || state.pending.text !== text || state.pending.shop !== shop) {
      state.pending = { text, shop, messageId: `m${state.count + 1}-${randomHex(4)}` };
    }
    const { messageId } = state.pending;
    const conversationId = state.conversationId;
    const body = { conversation_id: conversationId, message: text, message_id: messageId };
    if (shop) body.shop_id = shop;
    if (explainBox.checked) body.explain = true;
    sendButton.disabled = true;
    document.body.dataset.busy = "true";
    statusLine.textContent = "Classifying…";
    showError("");
    try {
      const reply = await api("POST", "classify-conversation", body);
      if (conversationId !== state.conversationId) return; // a new conversation began meanwhile
      state.count += 1;
      state.shop = shop;
      state.pending = null;
      renderShop(reply.message_result);
      renderMessage(state.count, text, messageId, reply);
      input.value = "";
      statusLine.textContent = `Message ${state.count} classified.`;
    } catch (e) {
      statusLine.textContent = "";
      showError(e.message);
    } finally {
      sendButton.disabled = state.tags.length === 0;
      delete document.body.dataset.busy;
      input.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!sendButton.disabled) send();
    }
  });
  byId("new-conversation").addEventListener("click", newConversation);
  shopInput.addEventListener("change", () => {
    const wasInvalid = shopInput.getAttribute("aria-invalid") === "true";
    const shop = shopId();
    if (shop === null) return;
    if (wasInvalid) showError("");
    if (state.count > 0 && shop !== state.shop) {
      newConversation();
      statusLine.textContent = `A new conversation, for ${shop ? `shop ${shop}` : "no shop"}.`;
    }
  });

  async function start() {
    newConversation();
    try {
      const info = await api("GET", "./");
      state.tags = info.tags;
      state.thresholds = info.thresholds;
      byId("model-version").textContent = info.model_version;
      const legend = byId("legend");
      legend.replaceChildren(...info.tags.map((tag) => el("span", { class: `tag ${colour(tag)}` },
        el("span", { class: "swatch", "aria-hidden": "true" }), `${tag} (threshold ${pct(info.thresholds[tag], 0)})`)));
      sendButton.disabled = false;
      document.body.dataset.ready = "true";
    } catch (e) {
      showError(`Could not load the service's tags: ${e.message}`);
    }
  }
  start();
})();
