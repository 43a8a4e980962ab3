package twitchoauthotel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/twitchoauth/twitchoauth"
)

// stateSets are the attribute sets of the users gauge, by state, made once.
var stateSets = func() map[twitchoauth.HealthState]metric.MeasurementOption {
	m := map[twitchoauth.HealthState]metric.MeasurementOption{}
	for _, s := range []twitchoauth.HealthState{twitchoauth.HealthInDoubt, twitchoauth.HealthRevoked,
		twitchoauth.HealthPending, twitchoauth.HealthBackingOff, twitchoauth.HealthIdle, twitchoauth.HealthFresh} {
		m[s] = metric.WithAttributeSet(attribute.NewSet(UserStateKey.String(string(s))))
	}
	return m
}()

var (
	pendingPair = metric.WithAttributeSet(attribute.NewSet(PendingKindKey.String("pair")))
	pendingMark = metric.WithAttributeSet(attribute.NewSet(PendingKindKey.String("mark")))
)

// ObserveUserTokens registers gauges of u's users: twitchoauth.users by state,
// twitchoauth.users.pending by kind, and twitchoauth.users.refreshing. They are read at each
// collection from [twitchoauth.UserTokens.Counts], from memory: no store read. Every state is
// reported, at 0 when no user is in it, so that an alert on in_doubt or revoked has a series from
// the start. Stop ends the observation.
func ObserveUserTokens(u *twitchoauth.UserTokens, opts Options) (stop func() error, err error) {
	m := meterOf(opts)
	users, err1 := m.Int64ObservableGauge("twitchoauth.users", metric.WithUnit("{user}"),
		metric.WithDescription("A registry's users, by state: in_doubt and revoked need a login."))
	pending, err2 := m.Int64ObservableGauge("twitchoauth.users.pending", metric.WithUnit("{user}"),
		metric.WithDescription("Users whose source holds a refreshed pair or a spending mark the store has not taken."))
	refreshing, err3 := m.Int64ObservableGauge("twitchoauth.users.refreshing", metric.WithUnit("{user}"),
		metric.WithDescription("Users whose token is being renewed."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c := u.Counts()
		s := c.States
		o.ObserveInt64(users, int64(s.InDoubt), stateSets[twitchoauth.HealthInDoubt])
		o.ObserveInt64(users, int64(s.Revoked), stateSets[twitchoauth.HealthRevoked])
		o.ObserveInt64(users, int64(s.Pending), stateSets[twitchoauth.HealthPending])
		o.ObserveInt64(users, int64(s.BackingOff), stateSets[twitchoauth.HealthBackingOff])
		o.ObserveInt64(users, int64(s.Idle), stateSets[twitchoauth.HealthIdle])
		o.ObserveInt64(users, int64(s.Fresh), stateSets[twitchoauth.HealthFresh])
		o.ObserveInt64(pending, int64(c.PendingPairs), pendingPair)
		o.ObserveInt64(pending, int64(c.PendingMarks), pendingMark)
		o.ObserveInt64(refreshing, int64(c.Refreshing))
		return nil
	}, users, pending, refreshing)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
