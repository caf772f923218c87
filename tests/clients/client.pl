#!/usr/bin/perl
# The shared client cases (tests/clients/cases.json) in Perl's DBI with
# DBD::SQLite (Debian's libdbd-sqlite3-perl), as a Perl program would use it:
#   perl tests/clients/client.pl build/runs.so
# With RaiseError a failing statement dies with DBI's message; $dbh->err is
# the result code (the extended one with sqlite_extended_result_codes) and
# $dbh->errstr SQLite's message. DBD::SQLite binds every placeholder as text
# unless sqlite_see_if_its_a_number is set; the cases run with its default,
# and the functions take a text that spells an integer as that integer.
use strict;
use warnings;
use DBI;
use DBD::SQLite;
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

my $extension = shift @ARGV or die "usage: perl client.pl EXTENSION\n";
my $cases_path = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)), 'cases.json');
open my $fh, '<:raw', $cases_path or die "$cases_path: $!\n";
my $cases = JSON::PP->new->decode(do { local $/; <$fh> });
close $fh;
my $tmp = tempdir('sqlite-runs-perl-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# The lines a Perl program writes.
my $dbh = DBI->connect("dbi:SQLite:dbname=$tmp/app.db", '', '', {
  RaiseError => 1, PrintError => 0, AutoCommit => 1,
  sqlite_extended_result_codes => 1,
});
$dbh->sqlite_enable_load_extension(1);
$dbh->sqlite_load_extension($extension);
$dbh->do('SELECT runs_busy_timeout(5000)');

# Which SQLite DBD::SQLite runs: Debian links it to the system's libsqlite3,
# whatever SQLite version the module's own sources carry.
my ($runtime) = $dbh->selectrow_array('SELECT sqlite_version()');
diag("DBD::SQLite $DBD::SQLite::VERSION (sources of SQLite $DBD::SQLite::sqlite_version), "
     . "running SQLite $runtime");

my $number = 0;
for my $step (@{ $cases->{steps} }) {
  ++$number;
  my $name = "$number: $step->{sql}";
  my @args = @{ $step->{args} // [] };
  my $result = eval { ($dbh->selectrow_array($step->{sql}, undef, @args))[0] };
  my $died = $@;
  if (my $error = $step->{error}) {
    (my $message = $dbh->errstr // '') =~ s/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/TIME/g;
    ok($died && $died =~ /^DBD::SQLite::db selectrow_array failed: /
       && $message eq $error->{message} && ($dbh->err // 0) == $error->{code}, $name)
      or diag("expected error $error->{code} '$error->{message}', got "
              . ($died ? ($dbh->err // '?') . " '$message'" : "no error"));
  } elsif ($died) {
    fail($name);
    diag("unexpected error: $died");
  } elsif (!defined $step->{result}) {
    ok(!defined $result, $name) or diag("expected NULL, got '$result'");
  } else {
    is("$result", "$step->{result}", $name);
  }
}
ok($number > 0, "cases found in $cases_path");
$dbh->disconnect;

# The default binds a Perl number as text; with sqlite_see_if_its_a_number,
# as an integer. Both are ids.
for my $see (0, 1) {
  my $other = DBI->connect("dbi:SQLite:dbname=$tmp/app.db", '', '',
                           { RaiseError => 1, PrintError => 0, sqlite_see_if_its_a_number => $see });
  $other->sqlite_enable_load_extension(1);
  $other->sqlite_load_extension($extension);
  is_deeply([$other->selectrow_array('SELECT typeof(?), run_status(?)', undef, 1, 1)],
            [$see ? 'integer' : 'text', 'completed'], "sqlite_see_if_its_a_number => $see");
  $other->disconnect;
}
done_testing();
