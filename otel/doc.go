// Package twitchoauthotel reports what twitchoauth does as OpenTelemetry metrics and spans: the
// refreshes and how they ended, the validations (with Twitch's 401s, 429s and 5xx apart), every
// request to Twitch's identity server, every store operation, the users a registry adds, drops and
// loses, the tokens handed out, and, for a [twitchoauth.UserTokens], its users by state. It is a
// module of its own, so that the library itself depends on no OpenTelemetry package; it sets the
// library's [twitchoauth.Hooks].
//
// Start with [Instrument] on the Client before anything is made from it, and [ObserveUserTokens]
// for a registry:
//
//	c := twitchoauth.NewClient(clientID, clientSecret)
//	if err := twitchoauthotel.Instrument(c, twitchoauthotel.Options{}); err != nil { ... }
//	users := twitchoauth.NewUserTokens(c, store)
//	stop, err := twitchoauthotel.ObserveUserTokens(users, twitchoauthotel.Options{})
//
// # Metrics
//
// Durations are histograms in seconds; each counts its events too.
//
//   - twitchoauth.refresh.duration: renewals of a token, by twitchoauth.refresh.outcome (ok,
//     rejected, in_doubt, transient, canceled, failed), twitchoauth.token.kind (user, app) and,
//     when Twitch's answer made the outcome, http.response.status_code.
//   - twitchoauth.validation.duration: validations, by twitchoauth.validation.outcome (ok,
//     invalid, rate_limited, server_error, network, canceled, failed) and
//     http.response.status_code.
//   - http.client.request.duration: requests to the identity server, by http.request.method,
//     server.address, server.port, http.response.status_code, error.type and
//     twitchoauth.endpoint (token, validate, revoke, device, userinfo, keys).
//   - twitchoauth.store.operation.duration: store operations, by db.operation.name (load, save,
//     save_if, delete, lock, renew, unlock, keys) and, when one failed, error.type.
//   - twitchoauth.user.changes: a registry's users added, removed, revoked, put in doubt and
//     recovered, by twitchoauth.user.change.
//   - twitchoauth.tokens.served: tokens handed out by sources, by twitchoauth.token.kind.
//   - twitchoauth.users (gauge, [ObserveUserTokens]): a registry's users by
//     twitchoauth.user.state (in_doubt, revoked, pending, backing_off, idle, fresh); an alert on
//     in_doubt or revoked above zero names the need for a login, and the registry's
//     [twitchoauth.UserTokens.Health] names the users.
//   - twitchoauth.users.pending (gauge): users whose source holds what the store has not taken,
//     by twitchoauth.pending.kind (pair, mark); twitchoauth.users.refreshing (gauge): renewals
//     under way.
//
// # Spans
//
// A renewal is a span, twitchoauth.refresh, with its requests (client spans named by their HTTP
// method, as OpenTelemetry's HTTP conventions name them) and its store operations
// (twitchoauth.store load, …) under it. No token, code, secret or token hash is ever an attribute,
// an event or a status description: a failed span's description is its outcome, not its error's
// text. User IDs are personal data: spans carry them (twitch.user.id) only when
// [Options].UserIDs is set, and metrics never do.
package twitchoauthotel
