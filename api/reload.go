package api

import (
	"errors"
	"net/http"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/messaging"
)

// ErrNoConfigFile is what Options.Reload returns when the broker has no
// config file to read again: the answer is 409.
var ErrNoConfigFile = errors.New("the broker was not started from a config file")

// ReloadResult is the answer of POST /api/v1/admin/reload: the keys, by
// path, that the reload applied, those that need a restart, and warnings
// about the configuration now running.
type ReloadResult struct {
	Config  string   `json:"config"`
	Applied []string `json:"applied"`
	Restart []string `json:"restart"`
	Notices []string `json:"notices"`
}

// reload makes the broker read its config file again (Options.Reload),
// as SIGHUP does; `inboxmq reload` calls it. It can change who may log
// in, so only admin accounts may, not service accounts. An invalid file
// changes nothing and is answered 422 with the reason, which names the
// key: the caller is an admin on the private listener.
func (a *api) reload(w http.ResponseWriter, r *http.Request, by messaging.Actor) {
	if by.Role != acl.RoleAdmin {
		writeError(w, http.StatusForbidden, "forbidden", "reloading the configuration needs an admin account")
		return
	}
	if a.Reload == nil {
		writeError(w, http.StatusConflict, "no_config_file", ErrNoConfigFile.Error())
		return
	}
	res, err := a.Reload()
	switch {
	case errors.Is(err, ErrNoConfigFile):
		writeError(w, http.StatusConflict, "no_config_file", err.Error())
		return
	case err != nil:
		a.Log.Warn("configuration reload refused", "by", by.UID, "error", err)
		writeError(w, http.StatusUnprocessableEntity, "invalid_config", err.Error())
		return
	}
	a.Log.Info("configuration reloaded through the admin API", "by", by.UID)
	for _, s := range []*[]string{&res.Applied, &res.Restart, &res.Notices} {
		if *s == nil {
			*s = []string{} // [] rather than null: a list, always
		}
	}
	writeJSON(w, http.StatusOK, res)
}
