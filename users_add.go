package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// Adding users to a registry: from a token or a code, validated first, stored under the user's
// lock, with their intents.

// AddUserForToken validates tok to learn whose it is, stores it under the user's ID and returns
// what validation said. A token Twitch rejects is refreshed first when it has a refresh token.
// Intents are added to those the user has. Adding a user who is already registered hands their
// source the new token, ending a revoked state. The token must be a user token of this client:
// otherwise the error Is [ErrInvalidToken], as it is when [UserTokens.RevocationHandler] hears,
// during the add, that the user revoked the app after the token was sent to be validated.
//
// When the store fails after Twitch issued a new pair (the refresh of a rejected token here, or
// AddUserForCode's exchange), that pair exists nowhere else, and the token handed in may be spent
// (a public client's refresh token works once). So it is not dropped: the user is added with it,
// and it is stored as a source's refreshed pair is, before anything else and within a second while
// Run runs (see [UserTokenSource]). The Validation is then returned with the store's error. Do not
// add the same token again.
func (u *UserTokens) AddUserForToken(ctx context.Context, tok *oauth2.Token, intents ...string) (*Validation, error) {
	return u.addUser(ctx, tok, false, intents)
}

// addUser is AddUserForToken; minted says tok is a pair Twitch has just issued (a code's), held
// nowhere else.
func (u *UserTokens) addUser(ctx context.Context, tok *oauth2.Token, minted bool, intents []string) (*Validation, error) {
	if u.ReadOnly {
		return nil, fmt.Errorf("twitchoauth: add user: %w; add users on the writer", errReadOnly)
	}
	if tok == nil || tok.AccessToken == "" {
		return nil, errors.New("twitchoauth: add user: no access token")
	}
	validated := time.Now() // before the request: a revocation Twitch sends after it wins
	v, err := u.c.ValidateToken(ctx, tok.AccessToken)
	spent := "" // the refresh token handed in, once a refresh has spent it
	if errors.Is(err, ErrInvalidToken) && tok.RefreshToken != "" {
		// A public client's refresh token works once: one whose answer was lost is not sent
		// again (the error says so), and a caller must not add the same token again.
		next, rerr := u.c.sendRefresh(ctx, tok.RefreshToken, time.Time{})
		if rerr != nil {
			return nil, fmt.Errorf("twitchoauth: add user: refresh the invalid token: %w", rerr)
		}
		spent, minted = tok.RefreshToken, true
		tok = carryScopes(next, tok)
		validated = time.Now()
		v, err = u.c.ValidateToken(ctx, tok.AccessToken)
	}
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: add user: validate token: %w", err)
	}
	switch {
	case !v.IsUserToken():
		return nil, fmt.Errorf("twitchoauth: add user: an app token, not a user token: %w", ErrInvalidToken)
	case v.ClientID != u.c.ClientID:
		return nil, fmt.Errorf("twitchoauth: add user: the token belongs to another client: %w", ErrInvalidToken)
	}
	return u.addValidatedAt(ctx, tok, v, validated, minted, spent, intents)
}

// addValidated is addValidatedAt for a token validated just now.
func (u *UserTokens) addValidated(ctx context.Context, tok *oauth2.Token, v *Validation, minted bool, spent string, intents []string) (*Validation, error) {
	return u.addValidatedAt(ctx, tok, v, time.Now(), minted, spent, intents)
}

// addValidatedAt adds the user of tok, a user token of this client that Twitch validated (v), as
// AddUserForToken does; minted and spent are addUser's. validated is when the validation was
// asked for: the stored ValidatedAt, so that a revocation Twitch sent after it wins, also one
// handled while the add is under way (see overtaken).
func (u *UserTokens) addValidatedAt(ctx context.Context, tok *oauth2.Token, v *Validation, validated time.Time, minted bool, spent string, intents []string) (*Validation, error) {
	now := time.Now()
	record := func(old *StoredToken) *StoredToken {
		var had []string
		if old != nil {
			had = old.Intents
		}
		st := (&StoredToken{Intents: mergeIntents(had, intents)}).withToken(tok).withValidation(v)
		st.ValidatedAt = validated
		return st
	}
	var old, st *StoredToken
	read := false // the store was read: old is what it held
	err := withStored(ctx, u.c, u.store, v.UserID, u.LockTTL, func(ctx context.Context, o *StoredToken, _ error) error {
		if u.revocations.since(v.UserID, validated) {
			return &revokedMidAddError{v.UserID}
		}
		old, read = o, true
		st = record(old)
		return u.store.Save(ctx, v.UserID, st)
	})
	if isRevokedMidAdd(err) {
		return nil, err
	}
	if err != nil && !minted {
		return nil, fmt.Errorf("twitchoauth: add user: store token: %w", err)
	}
	if st == nil {
		st = record(nil) // the store was not read
	}
	e, losers := u.put(ctx, st)
	if err != nil {
		// The new pair exists only here: held by the source, and stored before anything else.
		p := &pendingSave{next: st, rebase: rebaseHeld(st, old, read, spent, now)}
		if herr := e.src.hold(ctx, st.Token(), p); herr != nil {
			return nil, fmt.Errorf("twitchoauth: add user: store token: %w", errors.Join(err, herr))
		}
		err = fmt.Errorf("twitchoauth: add user: store token (the user is added, and their new token is held in memory until the store takes it; do not add this token again): %w", err)
	} else if rerr := e.src.replace(ctx, st.Token()); rerr != nil {
		// The source hands the token to OnRefresh and its subscribers.
		return nil, fmt.Errorf("twitchoauth: add user: %w", rerr)
	}
	if rerr := u.overtaken(ctx, e, validated); rerr != nil {
		return nil, rerr
	}
	// The users who lost an intent to this one lose it in the store too, so that every replica
	// (and this one after a restart) agrees who has it.
	for id, lost := range losers {
		err := u.update(ctx, id, func(st *StoredToken) bool {
			n := len(st.Intents)
			st.Intents = slices.DeleteFunc(st.Intents, func(in string) bool { return slices.Contains(lost, in) })
			return len(st.Intents) != n
		})
		if err != nil {
			u.log(ctx, slog.LevelWarn, "twitchoauth: store the intents a user lost",
				keyAttr("user_id", id), slog.String("error", err.Error()))
		}
	}
	return v, err
}

// rebaseHeld returns the pendingSave.rebase of next, a new token's record the store did not take
// (an added user's, or one handed to SetToken): next is stored in place of nothing; of old, what
// the store held when it failed (when read says it could be read; otherwise of an unmarked record
// last written before made, when next was made); or of the pair whose refresh token spent was (the one
// handed in); keeping the intents stored. In place of anything else (a newer login's, another
// replica's refresh under way or done) it is superseded.
func rebaseHeld(next, old *StoredToken, read bool, spent string, made time.Time) func(cur *StoredToken) *StoredToken {
	return func(cur *StoredToken) *StoredToken {
		switch {
		case cur == nil:
			return next
		case (spent != "" && cur.RefreshToken == spent) ||
			(old != nil && cur.AccessToken == old.AccessToken && cur.RefreshToken == old.RefreshToken) ||
			(!read && cur.Spending == nil && latest(cur.ValidatedAt, cur.RefreshIssuedAt).Before(made)):
			n := *next
			n.Intents = mergeIntents(cur.Intents, next.Intents)
			return &n
		}
		return nil
	}
}

// AddUserForCode exchanges an authorization code (from the redirect of a login started with
// [UserAuthenticator.AuthURL] or a web login) for a token, and adds its user as
// [UserTokens.AddUserForToken] does. redirectURI must be the one the login named.
func (u *UserTokens) AddUserForCode(ctx context.Context, code, redirectURI string, intents ...string) (*Validation, error) {
	if u.ReadOnly {
		return nil, fmt.Errorf("twitchoauth: add user: %w; add users on the writer", errReadOnly)
	}
	if code == "" {
		return nil, errors.New("twitchoauth: add user: no code")
	}
	tok, err := u.c.exchangeCode(ctx, code, redirectURI)
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: add user: exchange code: %w", err)
	}
	return u.addUser(ctx, tok, true, intents)
}

// put registers st's user, or updates the user's intents, and returns the entry and the intents
// it took from other users (by user ID).
func (u *UserTokens) put(ctx context.Context, st *StoredToken) (e *userEntry, losers map[string][]string) {
	u.mu.Lock()
	e = u.users[st.UserID]
	isNew := e == nil
	if isNew {
		e = u.newEntry(st)
		u.registerLocked(e)
	}
	losers = u.setIntentsLocked(e, st.Intents)
	u.mu.Unlock()
	if isNew {
		u.poke()
		u.c.userChange(ctx, st.UserID, UserAdded)
	}
	return e, losers
}

// registerLocked adds e, a new entry, to the registry, and to Run's schedule if it runs; u.mu is
// held.
func (u *UserTokens) registerLocked(e *userEntry) {
	u.writableLocked()[e.src.key] = e
	if u.scheduling() {
		u.added = append(u.added, e)
	}
}

// setIntentsLocked makes intents e's, taking them from other users; u.mu is held. It returns what
// it took, by user ID.
func (u *UserTokens) setIntentsLocked(e *userEntry, intents []string) map[string][]string {
	for _, in := range e.intents {
		if u.intents[in] == e.src.key && !slices.Contains(intents, in) {
			delete(u.intents, in)
		}
	}
	var losers map[string][]string
	for _, in := range intents {
		prev := u.intents[in]
		if prev != "" && prev != e.src.key {
			if p := u.users[prev]; p != nil {
				p.intents = slices.DeleteFunc(slices.Clone(p.intents), func(s string) bool { return s == in })
			}
			if losers == nil {
				losers = map[string][]string{}
			}
			losers[prev] = append(losers[prev], in)
		}
		u.intents[in] = e.src.key
	}
	e.intents = slices.Clone(intents)
	return losers
}

// mergeIntents returns had with the intents of add it lacks appended, without duplicates.
func mergeIntents(had, add []string) []string {
	var out []string
	for _, in := range slices.Concat(had, add) {
		if in != "" && !slices.Contains(out, in) {
			out = append(out, in)
		}
	}
	return out
}
