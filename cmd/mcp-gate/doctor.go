package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/doctor"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/policy"
)

const doctorUsage = `Usage: mcp-gate doctor [--policy policies.yaml]

Checks everything that can be checked without activating a role: the
policy, the sign-in, the token's tenant, object id and permissions (for
directory roles and PIM for Groups, as the policy names them), and for
each role or group whether it resolves and whether you are eligible, and
what each role's PIM settings ask of an activation. Exit status 1 when
anything blocks one.
`

const loginUsage = `Usage: mcp-gate login [--policy policies.yaml]

Signs in once with the policy's credential (browser or devicecode, through
approvals.clientId) and keeps the sign-in record in ` + pim.DefaultRecordFile + `,
so a desktop client starting mcp-gate signs in silently.
`

// runDoctor checks everything that can be checked without activating a
// role: the policy, the sign-in, the token's permissions, each role.
// Exit status 1 when anything blocks activation.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate doctor", flag.ContinueOnError)
	file := fs.String("policy", defaultPolicyPath, "policy `file`")
	if err := cmdline.Parse(fs, args, doctorUsage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cmdline.UsageError(stderr, fs, doctorUsage, "mcp-gate doctor: takes no arguments")
	}
	pol, err := loadPolicyOnly(*file, stdout)
	if err != nil {
		return err
	}
	var roles []doctor.Role
	for _, t := range pol.Roles() {
		roles = append(roles, doctor.Role{Target: t})
	}
	fmt.Fprintf(stdout, "policy:   %s: ok, %d role(s)\n", *file, len(roles))
	if len(roles) == 0 {
		fmt.Fprintln(stdout, "ok: no rule names a role, so nothing needs a sign-in")
		return nil
	}
	c, err := newActivator(pol, slog.New(slog.DiscardHandler), stderr, nil)
	if err != nil {
		fmt.Fprintf(stdout, "sign-in:  BLOCKER: %v\n", err)
		return cmdline.ExitError(1)
	}
	if doctor.Run(ctx, stdout, c, roles) > 0 {
		return cmdline.ExitError(1)
	}
	return nil
}

// runLogin signs in once with the policy's interactive credential and
// keeps the authentication record, so a desktop client starting mcp-gate
// finds the signed-in account.
func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate login", flag.ContinueOnError)
	file := fs.String("policy", defaultPolicyPath, "policy `file`")
	if err := cmdline.Parse(fs, args, loginUsage, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cmdline.UsageError(stderr, fs, loginUsage, "mcp-gate login: takes no arguments")
	}
	pol, err := loadPolicyOnly(*file, stdout)
	if err != nil {
		return err
	}
	ap := pol.Approvals()
	cred, err := newCredential(ap, stderr)
	if err != nil {
		return err
	}
	in, ok := cred.(*pim.Interactive)
	if !ok {
		return fmt.Errorf("approvals.credential is %s: `mcp-gate login` signs in for credential browser or devicecode only", ap.Credential)
	}
	rec, err := in.Login(ctx)
	if err != nil {
		return fmt.Errorf("sign-in failed: %w", err)
	}
	record, _ := policy.ExpandHome(pim.DefaultRecordFile)
	fmt.Fprintf(stdout, "signed in as %s (tenant %s); the sign-in record is in %s\n", rec.Username, rec.TenantID, record)
	if !pim.PersistentCache {
		fmt.Fprintln(stdout, "note: this build keeps tokens in memory only (no persistent token cache on this platform), so each start of mcp-gate asks you to sign in again")
	}
	return nil
}

// loadPolicyOnly is loadPolicy without the problems.
func loadPolicyOnly(file string, w io.Writer) (*policy.Policy, error) {
	p, _, err := loadPolicy(file, w)
	return p, err
}
