"""A throw-away Portage prefix where the tests run real Portage tools.

Shared by the fixtures that need one (emerge-shim's
test/fixtures/portage-playground.py, packaging's
test/fixtures/portage-prefix.py); they find this module on PYTHONPATH
(@steve/test-support's portageHelperDir()). Nothing of Portage is copied
here: PORTAGE_SRC is an unpacked Portage release, run from its source tree.

make_prefix(PORTAGE_SRC, DIR, tools=...) fills DIR with
  prefix/     the prefix, made by Portage's own test harness
              (lib/portage/tests/resolver/ResolverPlayground.py), with the
              harness's test_repo as the main repository (its profile)
  bin/TOOL    for each of `tools`: a wrapper that runs PORTAGE_SRC's real
              bin/TOOL in that prefix (the environment Portage's own emerge
              tests use); egencache gets the repositories as
              --repositories-configuration, as it reads no
              PORTAGE_REPOSITORIES from the environment
  gnupg/, tools/gtar
              the harness's GnuPG home (its gpg-agent is stopped before
              make_prefix returns) and GNU tar under the name it looks for
"""

import grp
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Prefix:
    """Where make_prefix put things."""

    bin: str
    """The wrappers, one per tool."""
    eprefix: str
    """The prefix (its etc/portage/make.conf is the harness's plus make_conf)."""
    distdir: str
    """The harness's DISTDIR."""


def _harness(portage_src, out):
    """Import Portage's test harness as Portage's own conftest.py sets it up.

    Returns (ResolverPlayground, gpg_home, tools): the harness class, the
    GnuPG home its gpg-agent runs on, and the directory with `gtar`.
    """
    sys.path.insert(0, os.path.join(portage_src, "lib"))
    # What Portage's own conftest.py does: the current user stands in for the
    # portage user and group, GnuPG gets the test keys.
    os.environ["PORTAGE_USERNAME"] = pwd.getpwuid(os.getuid()).pw_name
    os.environ["PORTAGE_GRPNAME"] = grp.getgrgid(os.getgid()).gr_name
    gpg_home = os.path.join(out, "gnupg")
    shutil.copytree(os.path.join(portage_src, "lib", "portage", "tests", ".gnupg"), gpg_home)
    os.chmod(gpg_home, 0o700)
    os.environ["PORTAGE_GNUPGHOME"] = gpg_home
    # Debian calls GNU tar `tar`; the harness looks for `gtar`.
    tools = os.path.join(out, "tools")
    os.makedirs(tools)
    os.symlink(shutil.which("tar"), os.path.join(tools, "gtar"))
    os.environ["PATH"] = tools + ":" + os.environ["PATH"]

    import portage

    portage._internal_caller = True
    portage._disable_legacy_globals()
    from portage.tests.resolver.ResolverPlayground import ResolverPlayground

    return ResolverPlayground, gpg_home, tools


def make_prefix(portage_src, out, *, tools, ebuilds=None, profile=None, make_conf=(), repositories=None):
    """Make the prefix in OUT/prefix and the wrappers in OUT/bin.

    tools: the names in PORTAGE_SRC/bin to wrap ("emerge", "portageq", ...).
    ebuilds: cpv -> metadata, the harness's test_repo ebuilds.
    profile: the harness's profile settings (e.g. "package.provided").
    make_conf: lines for the prefix's make.conf, after the harness's.
    repositories: name -> location, added after the harness's repositories
    in the wrappers' PORTAGE_REPOSITORIES.
    """
    ResolverPlayground, gpg_home, tools_dir = _harness(portage_src, out)
    try:
        playground = ResolverPlayground(
            ebuilds=ebuilds or {},
            profile=profile or {},
            user_config={"make.conf": tuple(make_conf)},
            eprefix=os.path.join(out, "prefix"),
            debug=True,  # keeps the prefix (cleanup() would remove it)
        )
        settings = playground.settings
        eprefix = settings["EPREFIX"]
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", gpg_home, "--kill", "all"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    # What lib/portage/tests/emerge/ does before running emerge in the prefix.
    fake_bin = os.path.join(eprefix, "bin")
    os.makedirs(fake_bin, exist_ok=True)
    for tool in ("chown", "chgrp"):
        os.symlink(shutil.which("true"), os.path.join(fake_bin, tool))
    edb = os.path.join(eprefix, "var", "cache", "edb")
    os.makedirs(edb, exist_ok=True)
    with open(os.path.join(edb, "counter"), "w") as counter:
        counter.write("100")

    repositories_config = settings.repositories.config_string()
    repositories_config += "".join(
        f"\n[{name}]\nlocation = {location}\n" for name, location in (repositories or {}).items()
    )
    env = {
        "PORTAGE_OVERRIDE_EPREFIX": eprefix,
        "PORTAGE_PYTHON": sys.executable,
        "PORTAGE_REPOSITORIES": repositories_config,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PORTAGE_INST_GID": str(os.getgid()),
        "PORTAGE_INST_UID": str(os.getuid()),
        "PORTAGE_USERNAME": os.environ["PORTAGE_USERNAME"],
        "PORTAGE_GRPNAME": os.environ["PORTAGE_GRPNAME"],
    }
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    path = fake_bin + ":" + os.path.join(eprefix, "usr", "bin") + ":" + tools_dir
    bin_dir = os.path.join(out, "bin")
    os.makedirs(bin_dir)
    for tool in tools:
        wrapper = (
            "#!/bin/bash\n"
            f"{exports}"
            f'export PATH={shlex.quote(path)}:"$PATH"\n'
            f"exec {shlex.quote(sys.executable)} {shlex.quote(os.path.join(portage_src, 'bin', tool))} "
            # egencache reads no PORTAGE_REPOSITORIES from the environment.
            + ('--repositories-configuration "$PORTAGE_REPOSITORIES" ' if tool == "egencache" else "")
            + '"$@"\n'
        )
        wrapper_path = os.path.join(bin_dir, tool)
        with open(wrapper_path, "w") as handle:
            handle.write(wrapper)
        os.chmod(wrapper_path, 0o755)
    return Prefix(bin=bin_dir, eprefix=eprefix, distdir=playground.distdir)
