package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/inboxmq/inboxmq/acl"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	// hashCost is the bcrypt cost HashPassword uses.
	hashCost = bcrypt.DefaultCost
	// maxHashCost refuses config hashes so slow that every login, good or
	// bad, would hold a core for seconds (cost 14 is about a second).
	maxHashCost = 14
	// maxPasswordBytes is bcrypt's input limit. bcrypt ignores the bytes
	// beyond it, so a longer password is refused outright instead of being
	// accepted on its first 72 bytes.
	maxPasswordBytes = 72
	// cacheSize bounds the cache of successful checks. One entry per account
	// name, so it only matters for configs with very many accounts.
	cacheSize = 1024
)

// Account is a static account from the config file: an operator or a
// back-end service.
type Account struct {
	Name         string   // valid uid: 1..64 of [A-Za-z0-9_.-]
	PasswordHash string   // bcrypt hash ($2a$, $2b$ or $2y$), as made by HashPassword
	Role         acl.Role // RoleAdmin, RoleService or RoleUser
}

type account struct {
	hash []byte
	id   Identity
}

// cacheEntry records one successful bcrypt check. hash is the bcrypt hash it
// was checked against, so an entry never outlives a password change; sum is
// a keyed SHA-256 of the password that passed.
type cacheEntry struct {
	hash []byte
	sum  [sha256.Size]byte
}

// Accounts authenticates static accounts. Safe for concurrent use.
type Accounts struct {
	byName map[string]*account // read-only after NewAccounts
	// dummy is compared against for unknown names so they take as long as
	// known ones; nil when there are no accounts and so nothing to hide.
	dummy []byte
	// sumKey keys the password digests kept in the cache, so the cache in a
	// memory dump is no cheaper to attack than the bcrypt hashes.
	sumKey []byte
	// slots limits concurrent bcrypt comparisons so that a flood of bad
	// passwords queues up instead of taking every core.
	slots chan struct{}

	mu       sync.Mutex
	cache    map[string]cacheEntry // guarded by mu
	cacheMax int

	bcrypts atomic.Uint64 // bcrypt comparisons made; lets tests see the cache work
}

// NewAccounts checks every account and returns them ready to authenticate.
// Each name must be a valid uid and unique, each hash a bcrypt hash of cost
// at most 14, each role admin, service or user. The error names the first
// bad account by position and name, never by hash.
func NewAccounts(list []Account) (*Accounts, error) {
	a := &Accounts{
		byName:   make(map[string]*account, len(list)),
		sumKey:   make([]byte, 32),
		slots:    make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		cache:    make(map[string]cacheEntry),
		cacheMax: cacheSize,
	}
	if _, err := rand.Read(a.sumKey); err != nil {
		return nil, fmt.Errorf("auth: accounts: %w", err)
	}
	slowest := 0
	for i, acc := range list {
		cost, err := checkAccount(acc)
		if err != nil {
			return nil, fmt.Errorf("auth: account %d (%q): %w", i, acc.Name, err)
		}
		if _, dup := a.byName[acc.Name]; dup {
			return nil, fmt.Errorf("auth: account %d (%q): duplicate name", i, acc.Name)
		}
		a.byName[acc.Name] = &account{
			hash: []byte(acc.PasswordHash),
			id:   Identity{UID: acc.Name, Role: acc.Role},
		}
		slowest = max(slowest, cost)
	}
	if len(list) > 0 {
		// At the slowest configured cost, an unknown name is never quicker
		// to refuse than a known one.
		pw := make([]byte, 16)
		if _, err := rand.Read(pw); err != nil {
			return nil, fmt.Errorf("auth: accounts: %w", err)
		}
		dummy, err := bcrypt.GenerateFromPassword(pw, slowest)
		if err != nil {
			return nil, fmt.Errorf("auth: accounts: dummy hash: %w", err)
		}
		a.dummy = dummy
	}
	return a, nil
}

// checkAccount validates one config row and returns its bcrypt cost.
func checkAccount(acc Account) (int, error) {
	if !acl.ValidUID(acc.Name) {
		return 0, errors.New("name must be 1-64 characters of A-Z a-z 0-9 _ . -")
	}
	switch acc.Role {
	case RoleAdmin, RoleService, RoleUser:
	default:
		return 0, fmt.Errorf("role must be %s, %s or %s", RoleAdmin, RoleService, RoleUser)
	}
	if !strings.HasPrefix(acc.PasswordHash, "$2a$") &&
		!strings.HasPrefix(acc.PasswordHash, "$2b$") &&
		!strings.HasPrefix(acc.PasswordHash, "$2y$") {
		return 0, errors.New("password_hash is not a bcrypt hash ($2a$, $2b$ or $2y$)")
	}
	cost, err := bcrypt.Cost([]byte(acc.PasswordHash))
	if err != nil {
		// bcrypt's errors can quote the hash; say only that it is unusable.
		return 0, errors.New("password_hash is not a valid bcrypt hash")
	}
	if cost > maxHashCost {
		return 0, fmt.Errorf("password_hash cost %d is over %d", cost, maxHashCost)
	}
	return cost, nil
}

// Has reports whether name is a configured account.
func (a *Accounts) Has(name string) bool {
	_, ok := a.byName[name]
	return ok
}

// Authenticate returns the account's identity when name exists and password
// matches its hash.
//
// A repeat of a successful check is answered from a small cache without
// bcrypt, so a reconnecting service is cheap; failures are never cached, and
// each costs one bcrypt comparison. Unknown names are compared against a
// dummy hash so that timing does not tell which names exist.
func (a *Accounts) Authenticate(name, password string) (Identity, bool) {
	return a.authenticate(name, password, a.bcryptMatch)
}

func (a *Accounts) authenticate(name, password string, match func(hash []byte, password string) bool) (Identity, bool) {
	// No configured hash matches these, whatever the name, so refusing them
	// early tells nothing about which names exist.
	if password == "" || len(password) > maxPasswordBytes {
		return Identity{}, false
	}
	acc, ok := a.byName[name]
	if !ok {
		if a.dummy != nil {
			match(a.dummy, password) // for the time it takes; always false
		}
		return Identity{}, false
	}
	sum := a.digest(password)
	if a.cached(name, acc.hash, &sum) {
		return acc.id, true
	}
	if !match(acc.hash, password) {
		return Identity{}, false
	}
	a.remember(name, acc.hash, &sum)
	return acc.id, true
}

// ErrBusy: every bcrypt slot stayed taken for as long as the caller would
// wait. The login was neither accepted nor refused: try again later.
var ErrBusy = errors.New("auth: password checks are busy")

// AuthenticateWait is Authenticate for callers that must not queue behind
// a flood of guesses (the HTTP API): when no bcrypt slot frees up within
// wait it returns ErrBusy at once, so guesses on one listener cannot starve
// logins on another.
func (a *Accounts) AuthenticateWait(name, password string, wait time.Duration) (Identity, bool, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
	case <-t.C:
		return Identity{}, false, ErrBusy
	}
	// Holding a slot: the comparison inside must not take another.
	id, ok := a.authenticate(name, password, func(hash []byte, pw string) bool {
		a.bcrypts.Add(1)
		return bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
	})
	<-a.slots
	return id, ok, nil
}

// Comparisons returns how many bcrypt comparisons were made, the dummy
// ones for unknown names included.
func (a *Accounts) Comparisons() uint64 { return a.bcrypts.Load() }

// bcryptMatch runs one bcrypt comparison once a slot is free.
func (a *Accounts) bcryptMatch(hash []byte, password string) bool {
	a.slots <- struct{}{}
	defer func() { <-a.slots }()
	a.bcrypts.Add(1)
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

func (a *Accounts) digest(password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.sumKey)
	m.Write([]byte(password))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	return sum
}

// cached reports whether password (as sum) already passed against hash.
func (a *Accounts) cached(name string, hash []byte, sum *[sha256.Size]byte) bool {
	a.mu.Lock()
	e, ok := a.cache[name]
	a.mu.Unlock()
	return ok && bytes.Equal(e.hash, hash) && subtle.ConstantTimeCompare(e.sum[:], sum[:]) == 1
}

// remember records a successful check, replacing any older entry for name.
// When the cache is full an arbitrary entry makes room (map order is random);
// losing one only costs that account a bcrypt on its next login.
func (a *Accounts) remember(name string, hash []byte, sum *[sha256.Size]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.cache[name]; !ok && len(a.cache) >= a.cacheMax {
		for k := range a.cache {
			delete(a.cache, k)
			break
		}
	}
	a.cache[name] = cacheEntry{hash: hash, sum: *sum}
}

// HashPassword returns a bcrypt hash (cost 10) of password for the config
// file. The password must be 1 to 72 bytes: bcrypt ignores anything longer.
func HashPassword(password string) (string, error) {
	return hashPassword(password, hashCost)
}

func hashPassword(password string, cost int) (string, error) {
	if password == "" {
		return "", errors.New("auth: password is empty")
	}
	if len(password) > maxPasswordBytes {
		return "", fmt.Errorf("auth: password longer than %d bytes", maxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}
