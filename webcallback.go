package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"golang.org/x/oauth2"
)

// The web login's callback: the browser back from Twitch, checked against its login cookie, the
// code exchanged, the token validated (and with OpenID its id_token verified), and handed on.

func (wl *WebLogin) serveCallback(w http.ResponseWriter, r *http.Request) {
	redirect, err := wl.check()
	if err != nil {
		wl.misconfiguration(w, r, err)
		return
	}
	// Every answer clears the cookie: whatever happens now, this login is over.
	http.SetCookie(w, loginCookieFor(redirect, "", -1))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL holds the code
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "This address takes GET only.")
		return
	}
	q, ok := callbackQuery(r, 0) // the states are rand.Text's, under maxCallbackParam
	if !ok {
		wl.fail(w, r, &APIError{Endpoint: "authorize", Message: "the redirect is longer than Twitch's are, so it did not come from Twitch"})
		return
	}
	state, code := q.Get("state"), q.Get("code")
	lc, err := wl.loginOf(r, redirect, state)
	if err != nil {
		wl.fail(w, r, err)
		return
	}
	if e := q.Get("error"); e != "" {
		secrets := []string{state, code}
		wl.fail(w, r, &APIError{Endpoint: "authorize", ErrorCode: scrub(e, secrets),
			Message: scrub(q.Get("error_description"), secrets)})
		return
	}
	if code == "" {
		wl.fail(w, r, &APIError{Endpoint: "authorize", Message: "the redirect carried neither a code nor an error"})
		return
	}
	// The browser may leave; the code is spent either way, so finish and hand the token over.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webLoginTimeout)
	defer cancel()
	res, err := wl.finish(ctx, code, lc)
	if err != nil {
		wl.fail(w, r, err)
		return
	}
	if log := wl.client.Logger; log != nil {
		log.LogAttrs(r.Context(), slog.LevelDebug, "twitchoauth: web login",
			keyAttr("user_id", res.Validation.UserID), slog.String("login", res.Validation.Login))
	}
	if wl.OnLogin != nil {
		wl.OnLogin(w, r, res)
		return
	}
	// Validated by finish: added without asking Twitch again.
	if _, err := wl.Users.addValidated(ctx, res.Token, res.Validation, false, "", wl.Intents); err != nil {
		wl.revoke(ctx, res.Token)
		wl.fail(w, r, fmt.Errorf("twitchoauth: add the login to the users: %w", err))
		return
	}
	if res.ReturnTo != "" {
		http.Redirect(w, r, res.ReturnTo, http.StatusSeeOther)
		return
	}
	writePage(w, http.StatusOK, defaultDocument, false)
}

// revoke revokes tok, a token the web login got but does not hand over.
func (wl *WebLogin) revoke(ctx context.Context, tok *oauth2.Token) {
	c := wl.client
	if err := c.RevokeToken(ctx, tok.AccessToken); err != nil && c.Logger != nil {
		c.Logger.LogAttrs(ctx, slog.LevelDebug, "twitchoauth: revoke a refused web login's token",
			slog.String("error", err.Error()))
	}
}

// finish trades the code for a token and checks it: validation, scopes, and with OpenID the
// id_token. A token it refuses is revoked.
func (wl *WebLogin) finish(ctx context.Context, code string, lc loginCookie) (*WebLoginResult, error) {
	c := wl.client
	tok, err := c.exchangeCode(ctx, code, wl.RedirectURL)
	if err != nil {
		return nil, err
	}
	refuse := func(err error) (*WebLoginResult, error) {
		wl.revoke(ctx, tok)
		return nil, err
	}
	v, err := c.ValidateToken(ctx, tok.AccessToken)
	switch {
	case err != nil:
		return refuse(err)
	case v.ClientID != c.ClientID || !v.IsUserToken():
		return refuse(fmt.Errorf("%w: the exchanged token is not a user token of this app", ErrInvalidToken))
	}
	if missing := missingScopes(wl.Scopes, v.Scopes); len(missing) > 0 {
		return refuse(&MissingScopeError{Missing: missing})
	}
	res := &WebLoginResult{Token: tok, Validation: v, ReturnTo: lc.ReturnTo}
	if !wl.OpenID {
		return res, nil
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return refuse(fmt.Errorf("%w: the token answer carries no id_token", ErrInvalidIDToken))
	}
	if lc.Nonce == "" {
		return refuse(fmt.Errorf("%w: the login cookie holds no nonce (started without OpenID)", ErrInvalidIDToken))
	}
	claims, err := c.VerifyIDToken(ctx, raw, lc.Nonce)
	if err != nil {
		return refuse(err)
	}
	if claims.Subject != v.UserID {
		return refuse(fmt.Errorf("%w: it names another user than the access token", ErrInvalidIDToken))
	}
	res.Claims = claims
	return res, nil
}

// fail answers a failed callback: through OnError, or with a page saying what went wrong.
func (wl *WebLogin) fail(w http.ResponseWriter, r *http.Request, err error) {
	if log := wl.client.Logger; log != nil {
		log.LogAttrs(r.Context(), slog.LevelInfo, "twitchoauth: web login failed", slog.String("error", err.Error()))
	}
	if wl.OnError != nil {
		wl.OnError(w, r, err)
		return
	}
	var ae *APIError
	switch {
	case errors.Is(err, ErrInvalidState):
		writeMessage(w, http.StatusBadRequest, "This login link is not valid",
			"It does not belong to a login started in this browser in the last 10 minutes, or that login "+
				"is already over. Start the login again.")
	case errors.Is(err, ErrAccessDenied):
		writeMessage(w, http.StatusForbidden, "Login cancelled",
			"You did not allow the app to use your Twitch account.")
	case errors.As(err, &ae) && ae.Endpoint == "authorize":
		writeMessage(w, http.StatusBadRequest, "Twitch refused the login", err.Error())
	default:
		writeMessage(w, http.StatusBadGateway, "The login failed",
			"Twitch's answer could not be used ("+err.Error()+"). Start the login again.")
	}
}
