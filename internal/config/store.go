package config

import (
	"net/url"

	"gopkg.in/yaml.v3"
)

// Store chooses where Event History is kept (docs/scale.md).
//
//	store:
//	  postgres: "postgres://cairn@127.0.0.1:5432/cairn?sslmode=disable"
//
// Without it, Event History lives in the embedded DuckDB store of the
// data dir.
type Store struct {
	// Postgres is a PostgreSQL connection URL (postgres:// or
	// postgresql://, pgx's parameters); empty: the embedded store.
	Postgres string `yaml:"postgres"`
}

func (d *decoder) store(n *yaml.Node, path string, s *Store) {
	d.mapping(n, path,
		field{"postgres", false, func(v *yaml.Node, path string) {
			raw, ok := d.str(v, path)
			if !ok || raw == "" {
				if ok {
					d.failf(v, path, "want a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE), got nothing: leave store out for the embedded store")
				}
				return
			}
			// The value may hold a password: errors never repeat it.
			u, err := url.Parse(raw)
			switch {
			case err != nil:
				d.failf(v, path, "want a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE), got a value that is not a URL")
			case u.Scheme != "postgres" && u.Scheme != "postgresql":
				d.failf(v, path, "want a PostgreSQL URL starting postgres:// or postgresql://, got the scheme %s", quote(u.Scheme))
			case u.Host == "" && u.Query().Get("host") == "":
				d.failf(v, path, "want a PostgreSQL URL naming its server (postgres://USER@HOST:PORT/DATABASE), got no host")
			default:
				s.Postgres = raw
			}
		}},
	)
}
