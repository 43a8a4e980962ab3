package twitchoauth

import (
	"strings"

	"golang.org/x/oauth2"
)

// Scope is one Twitch OAuth scope, such as "chat:read". See https://dev.twitch.tv/docs/authentication/scopes/.
type Scope string

// AllScopes returns every current (non-deprecated) scope, in the order of Twitch's scope table.
// The slice is new on every call; the caller may modify it.
func AllScopes() []Scope {
	return append([]Scope(nil), allScopes[:]...)
}

// BuildScope joins scopes with single spaces, as /authorize and /device take them
// (pyTwitchAPI build_scope).
func BuildScope(scopes []Scope) string {
	var b strings.Builder
	for i, s := range scopes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(s))
	}
	return b.String()
}

// ParseScopes is the inverse of [BuildScope]: it splits s on white space. Unknown strings are kept,
// so that a scope Twitch adds later survives a round trip. It returns nil for a blank s.
func ParseScopes(s string) []Scope {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil
	}
	scopes := make([]Scope, len(fields))
	for i, f := range fields {
		scopes[i] = Scope(f)
	}
	return scopes
}

// TokenScopes returns the scopes granted with tok, as the token endpoint reported them in its "scope"
// field. Twitch sends a JSON array; a space-separated string (RFC 6749) is read too, and twitch-cli's
// [""] counts as no scope. It returns nil when tok is nil or carries no scope.
func TokenScopes(tok *oauth2.Token) []Scope {
	if tok == nil {
		return nil
	}
	var scopes []Scope
	add := func(s string) {
		for _, f := range strings.Fields(s) {
			scopes = append(scopes, Scope(f))
		}
	}
	switch v := tok.Extra("scope").(type) {
	case []Scope:
		for _, s := range v {
			add(string(s))
		}
	case []string:
		for _, s := range v {
			add(s)
		}
	case []any:
		for _, s := range v {
			if str, ok := s.(string); ok {
				add(str)
			}
		}
	case string:
		add(v)
	}
	return scopes
}

// withScopes returns tok carrying scopes where [TokenScopes] finds them.
func withScopes(tok *oauth2.Token, scopes []Scope) *oauth2.Token {
	return tok.WithExtra(scopeExtra(scopes))
}

func scopesToStrings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

// missingScopes returns the scopes of want that have does not hold, in want's order.
func missingScopes(want, have []Scope) []Scope {
	var missing []Scope
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	return missing
}

// The scopes Twitch knows, one constant each, named after pyTwitchAPI's AuthScope members
// (https://dev.twitch.tv/docs/authentication/scopes/).
const (
	// ScopeAnalyticsReadExtension: View analytics data for the Twitch Extensions owned by the authenticated account.
	ScopeAnalyticsReadExtension Scope = "analytics:read:extensions"
	// ScopeAnalyticsReadGames: View analytics data for the games owned by the authenticated account.
	ScopeAnalyticsReadGames Scope = "analytics:read:games"
	// ScopeBitsRead: View Bits information for a channel.
	ScopeBitsRead Scope = "bits:read"
	// ScopeChannelBot: Joins your channel’s chatroom as a bot user, and perform chat-related actions as that user.
	ScopeChannelBot Scope = "channel:bot"
	// ScopeChannelEditCommercial: Run commercials on a channel.
	ScopeChannelEditCommercial Scope = "channel:edit:commercial"
	// ScopeChannelManageAds: Manage ads schedule on a channel.
	ScopeChannelManageAds Scope = "channel:manage:ads"
	// ScopeChannelManageBroadcast: Manage a channel’s broadcast configuration, including updating channel configuration and managing stream markers and stream tags.
	ScopeChannelManageBroadcast Scope = "channel:manage:broadcast"
	// ScopeChannelManageClips: Manage Clips for a channel.
	ScopeChannelManageClips Scope = "channel:manage:clips"
	// ScopeChannelManageExtensions: Manage a channel’s Extension configuration, including activating Extensions.
	ScopeChannelManageExtensions Scope = "channel:manage:extensions"
	// ScopeChannelManageGuestStar: Manage Guest Star for your channel.
	ScopeChannelManageGuestStar Scope = "channel:manage:guest_star"
	// ScopeChannelManageModerators: Add or remove the moderator role from users in your channel.
	ScopeChannelManageModerators Scope = "channel:manage:moderators"
	// ScopeChannelManagePolls: Manage a channel’s polls.
	ScopeChannelManagePolls Scope = "channel:manage:polls"
	// ScopeChannelManagePredictions: Manage of channel’s Channel Points Predictions.
	ScopeChannelManagePredictions Scope = "channel:manage:predictions"
	// ScopeChannelManageRaids: Manage a channel raiding another channel.
	ScopeChannelManageRaids Scope = "channel:manage:raids"
	// ScopeChannelManageRedemptions: Manage Channel Points custom rewards and their redemptions on a channel.
	ScopeChannelManageRedemptions Scope = "channel:manage:redemptions"
	// ScopeChannelManageSchedule: Manage a channel’s stream schedule.
	ScopeChannelManageSchedule Scope = "channel:manage:schedule"
	// ScopeChannelManageVideos: Manage a channel’s videos, including deleting videos.
	ScopeChannelManageVideos Scope = "channel:manage:videos"
	// ScopeChannelManageVips: Add or remove the VIP role from users in your channel.
	ScopeChannelManageVips Scope = "channel:manage:vips"
	// ScopeChannelModerate: Perform moderation actions in a channel.
	ScopeChannelModerate Scope = "channel:moderate"
	// ScopeChannelReadAds: Read the ads schedule and details on your channel.
	ScopeChannelReadAds Scope = "channel:read:ads"
	// ScopeChannelReadCharity: Read charity campaign details and user donations on your channel.
	ScopeChannelReadCharity Scope = "channel:read:charity"
	// ScopeChannelReadEditors: View a list of users with the editor role for a channel.
	ScopeChannelReadEditors Scope = "channel:read:editors"
	// ScopeChannelReadGoals: View Creator Goals for a channel.
	ScopeChannelReadGoals Scope = "channel:read:goals"
	// ScopeChannelReadGuestStar: Read Guest Star details for your channel.
	ScopeChannelReadGuestStar Scope = "channel:read:guest_star"
	// ScopeChannelReadHypeTrain: View Hype Train information for a channel.
	ScopeChannelReadHypeTrain Scope = "channel:read:hype_train"
	// ScopeChannelReadPolls: View a channel’s polls.
	ScopeChannelReadPolls Scope = "channel:read:polls"
	// ScopeChannelReadPredictions: View a channel’s Channel Points Predictions.
	ScopeChannelReadPredictions Scope = "channel:read:predictions"
	// ScopeChannelReadRedemptions: View Channel Points custom rewards and their redemptions on a channel.
	ScopeChannelReadRedemptions Scope = "channel:read:redemptions"
	// ScopeChannelReadStreamKey: View an authorized user’s stream key.
	ScopeChannelReadStreamKey Scope = "channel:read:stream_key"
	// ScopeChannelReadSubscriptions: View a list of all subscribers to a channel and check if a user is subscribed to a channel.
	ScopeChannelReadSubscriptions Scope = "channel:read:subscriptions"
	// ScopeChannelReadVips: Read the list of VIPs in your channel.
	ScopeChannelReadVips Scope = "channel:read:vips"
	// ScopeChatEdit: Send chat messages to a chatroom using an IRC connection.
	ScopeChatEdit Scope = "chat:edit"
	// ScopeChatRead: View chat messages sent in a chatroom using an IRC connection.
	ScopeChatRead Scope = "chat:read"
	// ScopeClipsEdit: Manage Clips for a channel.
	ScopeClipsEdit Scope = "clips:edit"
	// ScopeEditorManageClips: Manage Clips as an editor.
	ScopeEditorManageClips Scope = "editor:manage:clips"
	// ScopeModerationRead: View a channel’s moderation data including Moderators, Bans, Timeouts, and Automod settings.
	ScopeModerationRead Scope = "moderation:read"
	// ScopeModeratorManageAnnouncements: Send announcements in channels where you have the moderator role.
	ScopeModeratorManageAnnouncements Scope = "moderator:manage:announcements"
	// ScopeModeratorManageAutomod: Manage messages held for review by AutoMod in channels where you are a moderator.
	ScopeModeratorManageAutomod Scope = "moderator:manage:automod"
	// ScopeModeratorManageAutomodSettings: Manage a broadcaster’s AutoMod settings.
	ScopeModeratorManageAutomodSettings Scope = "moderator:manage:automod_settings"
	// ScopeModeratorManageBannedUsers: Ban and unban users.
	ScopeModeratorManageBannedUsers Scope = "moderator:manage:banned_users"
	// ScopeModeratorManageBlockedTerms: Manage a broadcaster’s list of blocked terms.
	ScopeModeratorManageBlockedTerms Scope = "moderator:manage:blocked_terms"
	// ScopeModeratorManageChatMessages: Delete chat messages in channels where you have the moderator role.
	ScopeModeratorManageChatMessages Scope = "moderator:manage:chat_messages"
	// ScopeModeratorManageChatSettings: Manage a broadcaster’s chat room settings.
	ScopeModeratorManageChatSettings Scope = "moderator:manage:chat_settings"
	// ScopeModeratorManageGuestStar: Manage Guest Star for channels where you are a Guest Star moderator.
	ScopeModeratorManageGuestStar Scope = "moderator:manage:guest_star"
	// ScopeModeratorManageShieldMode: Manage a broadcaster’s Shield Mode status.
	ScopeModeratorManageShieldMode Scope = "moderator:manage:shield_mode"
	// ScopeModeratorManageShoutouts: Manage a broadcaster’s shoutouts.
	ScopeModeratorManageShoutouts Scope = "moderator:manage:shoutouts"
	// ScopeModeratorManageSuspiciousUsers: Manage suspicious user statuses in channels where the user has the moderator role.
	ScopeModeratorManageSuspiciousUsers Scope = "moderator:manage:suspicious_users"
	// ScopeModeratorManageUnbanRequests: Manage a broadcaster’s unban requests.
	ScopeModeratorManageUnbanRequests Scope = "moderator:manage:unban_requests"
	// ScopeModeratorManageWarnings: Warn users in channels where you have the moderator role.
	ScopeModeratorManageWarnings Scope = "moderator:manage:warnings"
	// ScopeModeratorReadAutomodSettings: View a broadcaster’s AutoMod settings.
	ScopeModeratorReadAutomodSettings Scope = "moderator:read:automod_settings"
	// ScopeModeratorReadBannedUsers: Read the list of bans or unbans in channels where you have the moderator role.
	ScopeModeratorReadBannedUsers Scope = "moderator:read:banned_users"
	// ScopeModeratorReadBlockedTerms: View a broadcaster’s list of blocked terms.
	ScopeModeratorReadBlockedTerms Scope = "moderator:read:blocked_terms"
	// ScopeModeratorReadChatMessages: Read deleted chat messages in channels where you have the moderator role.
	ScopeModeratorReadChatMessages Scope = "moderator:read:chat_messages"
	// ScopeModeratorReadChatSettings: View a broadcaster’s chat room settings.
	ScopeModeratorReadChatSettings Scope = "moderator:read:chat_settings"
	// ScopeModeratorReadChatters: View the chatters in a broadcaster’s chat room.
	ScopeModeratorReadChatters Scope = "moderator:read:chatters"
	// ScopeModeratorReadFollowers: Read the followers of a broadcaster.
	ScopeModeratorReadFollowers Scope = "moderator:read:followers"
	// ScopeModeratorReadGuestStar: Read Guest Star details for channels where you are a Guest Star moderator.
	ScopeModeratorReadGuestStar Scope = "moderator:read:guest_star"
	// ScopeModeratorReadModerators: Read the list of moderators in channels where you have the moderator role.
	ScopeModeratorReadModerators Scope = "moderator:read:moderators"
	// ScopeModeratorReadShieldMode: View a broadcaster’s Shield Mode status.
	ScopeModeratorReadShieldMode Scope = "moderator:read:shield_mode"
	// ScopeModeratorReadShoutouts: View a broadcaster’s shoutouts.
	ScopeModeratorReadShoutouts Scope = "moderator:read:shoutouts"
	// ScopeModeratorReadSuspiciousUsers: Read chat messages from suspicious users and see users flagged as suspicious in channels where the user has the moderator role.
	ScopeModeratorReadSuspiciousUsers Scope = "moderator:read:suspicious_users"
	// ScopeModeratorReadUnbanRequests: View a broadcaster’s unban requests.
	ScopeModeratorReadUnbanRequests Scope = "moderator:read:unban_requests"
	// ScopeModeratorReadVips: Read the list of VIPs in channels where you have the moderator role.
	ScopeModeratorReadVips Scope = "moderator:read:vips"
	// ScopeModeratorReadWarnings: Read warnings in channels where you have the moderator role.
	ScopeModeratorReadWarnings Scope = "moderator:read:warnings"
	// ScopeUserBot: Join a specified chat channel as your user and appear as a bot, and perform chat-related actions as your user.
	ScopeUserBot Scope = "user:bot"
	// ScopeUserEdit: Manage a user object.
	ScopeUserEdit Scope = "user:edit"
	// ScopeUserEditBroadcast: View and edit a user’s broadcasting configuration, including Extension configurations.
	ScopeUserEditBroadcast Scope = "user:edit:broadcast"
	// ScopeUserManageBlockedUsers: Manage the block list of a user.
	ScopeUserManageBlockedUsers Scope = "user:manage:blocked_users"
	// ScopeUserManageChatColor: Update the color used for the user’s name in chat.
	ScopeUserManageChatColor Scope = "user:manage:chat_color"
	// ScopeUserManageWhispers: Receive whispers sent to your user, and send whispers on your user’s behalf.
	ScopeUserManageWhispers Scope = "user:manage:whispers"
	// ScopeUserReadBlockedUsers: View the block list of a user.
	ScopeUserReadBlockedUsers Scope = "user:read:blocked_users"
	// ScopeUserReadBroadcast: View a user’s broadcasting configuration, including Extension configurations.
	ScopeUserReadBroadcast Scope = "user:read:broadcast"
	// ScopeUserReadChat: Receive chatroom messages and informational notifications relating to a channel’s chatroom.
	ScopeUserReadChat Scope = "user:read:chat"
	// ScopeUserReadEmail: View a user’s email address.
	ScopeUserReadEmail Scope = "user:read:email"
	// ScopeUserReadEmotes: View emotes available to a user.
	ScopeUserReadEmotes Scope = "user:read:emotes"
	// ScopeUserReadFollows: View the list of channels a user follows.
	ScopeUserReadFollows Scope = "user:read:follows"
	// ScopeUserReadModeratedChannels: Read the list of channels you have moderator privileges in.
	ScopeUserReadModeratedChannels Scope = "user:read:moderated_channels"
	// ScopeUserReadSubscriptions: View if an authorized user is subscribed to specific channels.
	ScopeUserReadSubscriptions Scope = "user:read:subscriptions"
	// ScopeUserReadWhispers: Receive whispers sent to your user.
	ScopeUserReadWhispers Scope = "user:read:whispers"
	// ScopeUserWriteChat: Send chat messages to a chatroom.
	ScopeUserWriteChat Scope = "user:write:chat"
	// ScopeWhispersRead: Receive whisper messages for your user using PubSub.
	ScopeWhispersRead Scope = "whispers:read"
)

// Deprecated scopes, kept so that old tokens and stored files still parse to known constants.
const (
	// ScopeChannelSubscriptions: Read all subscribers to your channel.
	//
	// Deprecated: Twitch no longer grants or honours this scope.
	ScopeChannelSubscriptions Scope = "channel_subscriptions"
	// ScopeUserEditFollows: Was previously used for “Create User Follows” and “Delete User Follows.
	//
	// Deprecated: Twitch no longer grants or honours this scope.
	ScopeUserEditFollows Scope = "user:edit:follows"
	// ScopeWhispersEdit: Send whisper messages.
	//
	// Deprecated: Twitch no longer grants or honours this scope.
	ScopeWhispersEdit Scope = "whispers:edit"
)

// allScopes lists every current scope in the order of Twitch's scope table.
var allScopes = [...]Scope{
	ScopeAnalyticsReadExtension,
	ScopeAnalyticsReadGames,
	ScopeBitsRead,
	ScopeChannelBot,
	ScopeChannelEditCommercial,
	ScopeChannelManageAds,
	ScopeChannelManageBroadcast,
	ScopeChannelManageClips,
	ScopeChannelManageExtensions,
	ScopeChannelManageGuestStar,
	ScopeChannelManageModerators,
	ScopeChannelManagePolls,
	ScopeChannelManagePredictions,
	ScopeChannelManageRaids,
	ScopeChannelManageRedemptions,
	ScopeChannelManageSchedule,
	ScopeChannelManageVideos,
	ScopeChannelManageVips,
	ScopeChannelModerate,
	ScopeChannelReadAds,
	ScopeChannelReadCharity,
	ScopeChannelReadEditors,
	ScopeChannelReadGoals,
	ScopeChannelReadGuestStar,
	ScopeChannelReadHypeTrain,
	ScopeChannelReadPolls,
	ScopeChannelReadPredictions,
	ScopeChannelReadRedemptions,
	ScopeChannelReadStreamKey,
	ScopeChannelReadSubscriptions,
	ScopeChannelReadVips,
	ScopeChatEdit,
	ScopeChatRead,
	ScopeClipsEdit,
	ScopeEditorManageClips,
	ScopeModerationRead,
	ScopeModeratorManageAnnouncements,
	ScopeModeratorManageAutomod,
	ScopeModeratorManageAutomodSettings,
	ScopeModeratorManageBannedUsers,
	ScopeModeratorManageBlockedTerms,
	ScopeModeratorManageChatMessages,
	ScopeModeratorManageChatSettings,
	ScopeModeratorManageGuestStar,
	ScopeModeratorManageShieldMode,
	ScopeModeratorManageShoutouts,
	ScopeModeratorManageSuspiciousUsers,
	ScopeModeratorManageUnbanRequests,
	ScopeModeratorManageWarnings,
	ScopeModeratorReadAutomodSettings,
	ScopeModeratorReadBannedUsers,
	ScopeModeratorReadBlockedTerms,
	ScopeModeratorReadChatMessages,
	ScopeModeratorReadChatSettings,
	ScopeModeratorReadChatters,
	ScopeModeratorReadFollowers,
	ScopeModeratorReadGuestStar,
	ScopeModeratorReadModerators,
	ScopeModeratorReadShieldMode,
	ScopeModeratorReadShoutouts,
	ScopeModeratorReadSuspiciousUsers,
	ScopeModeratorReadUnbanRequests,
	ScopeModeratorReadVips,
	ScopeModeratorReadWarnings,
	ScopeUserBot,
	ScopeUserEdit,
	ScopeUserEditBroadcast,
	ScopeUserManageBlockedUsers,
	ScopeUserManageChatColor,
	ScopeUserManageWhispers,
	ScopeUserReadBlockedUsers,
	ScopeUserReadBroadcast,
	ScopeUserReadChat,
	ScopeUserReadEmail,
	ScopeUserReadEmotes,
	ScopeUserReadFollows,
	ScopeUserReadModeratedChannels,
	ScopeUserReadSubscriptions,
	ScopeUserReadWhispers,
	ScopeUserWriteChat,
	ScopeWhispersRead,
}

func toScopes(ss []string) []Scope {
	if len(ss) == 0 {
		return nil
	}
	out := make([]Scope, len(ss))
	for i, s := range ss {
		out[i] = Scope(s)
	}
	return out
}
