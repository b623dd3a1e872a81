// Package config is tierlb's configuration: its shape, its defaults, and
// how it is loaded from a file (YAML, TOML or JSON), TIERLB_* environment
// variables and command-line flags, checked, and turned into the plain
// structs of the packages that do the work. It is the only package that
// knows viper.
//
//	cfg, err := config.Load(config.Source{File: "tierlb.yaml"})
//	if err != nil {
//		for _, p := range config.Problems(err) {
//			fmt.Println(p) // services[0].timeouts.connect: "2x" is not a duration ...
//		}
//	}
//	pc, err := cfg.Services[0].ProxyConfig(cfg.Log.Access)
//
// Every problem is reported at once, each as an *Error naming its key.
// Services declared by Docker labels go through the same defaults,
// decoding and checks (LabelService).
package config
