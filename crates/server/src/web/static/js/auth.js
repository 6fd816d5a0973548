// Sign in and create an account.

import { login, register } from "./api.js";
import { field, h, replace } from "./dom.js";

export function authView(onSignedIn) {
  let mode = "signin";
  const email = h("input", { type: "email", autocomplete: "username", required: true, name: "email" });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true, minlength: "10", name: "password" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary wide" }, "Sign in");
  const heading = h("h1", {}, "Sign in to SheetGPT");
  const hint = h("small", { class: "hint", id: "password-hint", hidden: true }, "10 characters or more; not a common password, not your email address.");
  password.setAttribute("aria-describedby", "password-hint");
  const tabs = {
    signin: h("button", { type: "button", "aria-pressed": "true", onclick: () => setMode("signin") }, "Sign in"),
    register: h("button", { type: "button", "aria-pressed": "false", onclick: () => setMode("register") }, "Create account"),
  };

  function setMode(next) {
    mode = next;
    tabs.signin.setAttribute("aria-pressed", String(mode === "signin"));
    tabs.register.setAttribute("aria-pressed", String(mode === "register"));
    heading.textContent = mode === "signin" ? "Sign in to SheetGPT" : "Create your SheetGPT account";
    submit.textContent = mode === "signin" ? "Sign in" : "Create account";
    password.autocomplete = mode === "signin" ? "current-password" : "new-password";
    hint.hidden = mode === "signin";
    error.hidden = true;
    email.focus();
  }

  const form = h("form", {
    class: "auth-form",
    onsubmit: async (e) => {
      e.preventDefault();
      error.hidden = true;
      submit.disabled = true;
      try {
        if (mode === "signin") await login(email.value, password.value);
        else await register(email.value, password.value);
        password.value = "";
        onSignedIn();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        submit.disabled = false;
      }
    },
  },
  heading,
  h("div", { class: "tabs", role: "group", "aria-label": "Sign in or create an account" }, tabs.signin, tabs.register),
  field("Email", email),
  h("div", { class: "field" }, h("label", { for: "auth-password" }, "Password"), password, hint),
  error,
  submit);
  password.id = "auth-password";

  const view = h("main", { class: "auth", id: "main", tabindex: "-1" },
    h("div", { class: "auth-card" },
      h("div", { class: "brand" }, h("img", { src: "/assets/icon.svg", alt: "", width: "32", height: "32" }), h("span", {}, "SheetGPT")),
      h("p", { class: "tagline" }, "Conversations that become clean, typed, versioned tables."),
      form));
  return {
    el: view,
    focus: () => email.focus(),
    reset: () => replace(error),
  };
}
