// The dev page: the browser half of "Sign in with Google" with server-side access.
// Plain JS, no build step. Data from the server is only ever set as text, never as HTML.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const STATE_KEY = "grantkeeper.state";
const SUB_KEY = "grantkeeper.sub";
const PICKED_KEY = "grantkeeper.picked";

function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("error", isError);
  box.hidden = !text;
}

function randomState() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Send the browser to the consent page. The code comes back to this page's registered URL.
function startCodeFlow(scopes, extra = {}) {
  const home = new URL(config.redirect_uri);
  if (location.origin !== home.origin) {
    location.replace(home.href); // sessionStorage is per origin: start from the registered one
    return;
  }
  const state = randomState();
  sessionStorage.setItem(STATE_KEY, state);
  const params = new URLSearchParams({
    client_id: config.client_id,
    redirect_uri: config.redirect_uri,
    response_type: "code",
    scope: scopes.join(" "),
    access_type: "offline",
    include_granted_scopes: "true",
    state,
    ...extra,
  });
  location.assign(`${config.authorization_endpoint}?${params}`);
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "X-Requested-With": "XMLHttpRequest", "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const parts = [data.detail || data.title || `HTTP ${response.status}`, data.advice];
    throw new Error(parts.filter(Boolean).join(" "));
  }
  return data;
}

// Back from the consent page: check state, then hand the code to the keeper.
async function finishCodeFlow() {
  const query = new URLSearchParams(location.search);
  if (!query.has("code") && !query.has("error")) return;
  const expected = sessionStorage.getItem(STATE_KEY);
  sessionStorage.removeItem(STATE_KEY);
  history.replaceState(null, "", location.pathname); // the code must not stay in the address bar
  if (!expected || query.get("state") !== expected) {
    say("Ignored an answer from the consent page that this page did not ask for (state).", true);
    return;
  }
  if (query.has("error")) {
    say(`Sign-in did not happen: ${query.get("error")}.`, true);
    return;
  }
  const result = await api("POST", "/v1/google/signin", { code: query.get("code"), platform: "web" });
  sessionStorage.setItem(SUB_KEY, result.user.sub);
  const added = result.grant.added_scopes.length;
  const offline = result.grant.offline ? "offline access kept" : "no offline access";
  say(`Signed in as ${result.user.email}: ${added} new scope(s), ${offline}.`);
}

function when(value) {
  return value ? new Date(value).toLocaleString() : "—";
}

function row(list, term, value, className) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (className) dd.className = className;
  list.append(dt, dd);
}

async function render() {
  const sub = sessionStorage.getItem(SUB_KEY);
  $("signed-out").hidden = Boolean(sub);
  $("signed-in").hidden = !sub;
  $("job").hidden = true;
  if (!sub) return;
  const { user, grants, now } = await api("GET", `/dev/users/${encodeURIComponent(sub)}`);
  const grant = grants[0] || { scopes: [], status: "none" };
  $("avatar").textContent = (user.given_name || user.email || "?").slice(0, 1).toUpperCase();
  $("user-name").textContent = user.name || user.email;
  $("user-email").textContent = `${user.email}${user.email_verified ? " (verified)" : ""}`;
  $("user-sub").textContent = user.sub;
  const list = $("grant");
  list.replaceChildren();
  row(list, "Grant", grant.status, `status-${grant.status}`);
  row(list, "Offline access", grant.offline ? "yes (refresh token stored, encrypted)" : "no");
  const expired = grant.access_token_expires_at && new Date(grant.access_token_expires_at) <= new Date(now);
  row(list, "Access token", `${expired ? "expired" : "valid until"} ${when(grant.access_token_expires_at)}`);
  row(list, "Last refresh", when(grant.last_refreshed_at));
  row(list, "Last used", when(grant.last_used_at));
  row(list, "Provider clock", when(now));
  const scopes = $("scopes");
  scopes.replaceChildren(
    ...grant.scopes.map((scope) => {
      const item = document.createElement("li");
      item.textContent = scope;
      return item;
    }),
  );
  const hasPhotos = config.photos_scopes.every((s) => grant.scopes.includes(s));
  $("photos-missing").hidden = hasPhotos;
  $("pick").hidden = !hasPhotos;
  $("job").hidden = !hasPhotos || !sessionStorage.getItem(PICKED_KEY);
}

function picture(src, label) {
  const box = document.createElement("div");
  const img = document.createElement("img");
  img.src = src;
  img.alt = label;
  const caption = document.createElement("div");
  caption.className = "label";
  caption.textContent = label;
  box.append(img, caption);
  return box;
}

function showResults(job) {
  const summary = $("job-summary");
  const refreshed = job.refreshes ? `the keeper refreshed the token (${job.refreshes} refresh)` : "no refresh needed";
  summary.textContent =
    `${job.created} picture(s) enhanced into “${job.target_album}” in ${job.seconds} s, ` +
    `${job.batch_calls} batchCreate call(s); ${refreshed}.`;
  summary.hidden = false;
  $("results").replaceChildren(
    ...job.photos.map((photo) => {
      const figure = document.createElement("figure");
      figure.className = "pair";
      const images = document.createElement("div");
      images.className = "images";
      images.append(picture(photo.before, "before"), picture(photo.after, "after"));
      const caption = document.createElement("figcaption");
      caption.textContent = `${photo.filename} · changed ${photo.change}/255 · ${photo.status}`;
      figure.append(images, caption);
      return figure;
    }),
  );
}

// Run a button's action with the button disabled; report failures on the page.
function action(id, work) {
  $(id).addEventListener("click", async () => {
    const button = $(id);
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      say(error.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

action("sign-in", async () => startCodeFlow(config.sign_in_scopes, { prompt: "consent" }));
action("grant-photos", async () => {
  const email = $("user-email").textContent.split(" ")[0];
  startCodeFlow(config.photos_scopes, { login_hint: email });
});
action("sign-out", async () => {
  sessionStorage.removeItem(SUB_KEY);
  sessionStorage.removeItem(PICKED_KEY);
  say("");
  await render();
});
action("fill-library", async () => {
  const sub = sessionStorage.getItem(SUB_KEY);
  const added = await api("POST", `/dev/users/${encodeURIComponent(sub)}/library`);
  say(`Your Google Photos library now holds ${added.library_size} photo(s) no app created.`);
});

function showPicked(result) {
  const dies = new Date(result.base_urls_die_at).toLocaleTimeString();
  const summary = $("pick-summary");
  summary.textContent =
    `You picked ${result.count} photo(s). The backend fetched the originals at once: ` +
    `their base URLs stop working at ${dies} (provider clock).`;
  summary.hidden = false;
  $("picked").replaceChildren(...result.photos.map((photo) => picture(photo.src, photo.filename)));
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

action("pick-photos", async () => {
  const sub = encodeURIComponent(sessionStorage.getItem(SUB_KEY));
  // Opened now, inside the click, so no popup blocker objects; pointed at the picker below.
  const popup = window.open("about:blank", "google-photos-picker", "width=900,height=700");
  let session;
  try {
    session = await api("POST", `/dev/users/${sub}/picker`);
  } catch (error) {
    if (popup) popup.close();
    throw error;
  }
  const target = `${session.picker_uri}/autoclose`;
  if (popup) popup.location.href = target;
  else say(`Open ${target} to pick your photos.`);
  say("Pick photos in the Google Photos window, then tap Done…");
  let interval = session.poll_interval;
  for (;;) {
    await sleep(interval * 1000); // as pollingConfig.pollInterval asks
    const state = await api("GET", `/dev/users/${sub}/picker/${encodeURIComponent(session.session_id)}`);
    if (state.state === "picked") {
      sessionStorage.setItem(PICKED_KEY, "1");
      say("");
      showPicked(state);
      await render();
      return;
    }
    if (state.timeout_in <= 0) throw new Error("The picking session timed out; pick again.");
    interval = state.poll_interval;
  }
});
action("go-away", async () => {
  const away = await api("POST", "/dev/away");
  say(`You are away: the provider's clock moved ${Math.round(away.advanced_seconds / 60)} minutes.`);
  await render();
});
action("enhance", async () => {
  say("Enhancing…");
  const sub = sessionStorage.getItem(SUB_KEY);
  const job = await api("POST", `/dev/users/${encodeURIComponent(sub)}/enhance`);
  say("");
  showResults(job);
  await render();
});

finishCodeFlow()
  .catch((error) => say(error.message, true))
  .then(render)
  .catch((error) => say(error.message, true));
