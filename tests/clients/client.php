<?php
// The shared client cases (tests/clients/cases.json) in PHP's SQLite3 class
// (Debian's php-sqlite3), as a PHP program would use it:
//   php -d sqlite3.extension_dir=DIR tests/clients/client.php runs.so
// SQLite3::loadExtension() takes a file name inside sqlite3.extension_dir
// (php.ini or -d, not ini_set()). SQLite3Stmt::execute() steps a statement
// and resets it, and fetchArray() then steps it again: a SELECT of a function
// with side effects runs twice. runs_value() below is the safe pattern: a
// first row of NULL, which execute() reads, before the function's row, which
// the second fetchArray() reads, so the function runs once.
// With enableExceptions(true) a failing statement throws Exception (code 0,
// message "Unable to execute statement: " and SQLite's); lastErrorCode() is
// the primary result code and lastExtendedErrorCode() the extended one.
// Every argument is bound as PHP holds it: ids from a web request are
// strings, and the functions take '1' as the id 1.

function runs_value(SQLite3 $db, string $select, array $args = []) {
  $stmt = $db->prepare("SELECT NULL UNION ALL $select");
  foreach ($args as $i => $arg) $stmt->bindValue($i + 1, $arg);
  $result = $stmt->execute();  // steps once: the NULL row, the function does not run
  try {
    $result->fetchArray(SQLITE3_NUM);  // the NULL row again
    $row = $result->fetchArray(SQLITE3_NUM);  // the function runs, once
    return $row[0];
  } finally {
    $result->finalize();
    $stmt->close();
  }
}

if ($argc != 2) {
  fwrite(STDERR, "usage: php -d sqlite3.extension_dir=DIR client.php FILE_IN_DIR\n");
  exit(2);
}
$cases = json_decode(file_get_contents(__DIR__ . '/cases.json'), true);
$tmp = sys_get_temp_dir() . '/sqlite-runs-php-' . getmypid();
@mkdir($tmp);
@unlink("$tmp/app.db");

// The lines a PHP program writes.
$db = new SQLite3("$tmp/app.db");
$db->enableExceptions(true);
$db->loadExtension($argv[1]);
runs_value($db, 'SELECT runs_busy_timeout(5000)');

$passed = 0;
$failed = 0;
foreach ($cases['steps'] as $number => $step) {
  $name = ($number + 1) . ': ' . $step['sql'];
  // PHP programs hold ids as strings ($_GET, PDO-less forms): bind them so.
  $args = array_map(fn($a) => is_int($a) ? (string)$a : $a, $step['args'] ?? []);
  try {
    $value = runs_value($db, $step['sql'], $args);
    $got = ['value' => $value];
  } catch (Exception $e) {
    $got = ['class' => get_class($e), 'code' => $db->lastExtendedErrorCode(),
            'message' => preg_replace('/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/', 'TIME', $e->getMessage())];
  }
  if (isset($step['error'])) {
    $want = ['class' => 'Exception', 'code' => $step['error']['code'],
             'message' => 'Unable to execute statement: ' . $step['error']['message']];
  } else {
    $want = ['value' => $step['result']];
  }
  if ($got == $want && (!isset($got['value']) || gettype($got['value']) == gettype($want['value']))) {
    $passed++;
    echo "ok - $name\n";
  } else {
    $failed++;
    echo "not ok - $name\n  expected " . json_encode($want) . "\n  got      " . json_encode($got) . "\n";
  }
}
$db->close();

// The default pattern, execute() then fetchArray(), runs the function twice:
// the second start_run() meets the run the first one started.
$db = new SQLite3("$tmp/double.db");
$db->enableExceptions(true);
$db->loadExtension($argv[1]);
$db->querySingle('SELECT runs_migrate()');
$stmt = $db->prepare('SELECT start_run(?)');
$stmt->bindValue(1, 'nightly');
try {
  $stmt->execute()->fetchArray();
  $double = 'no error';
} catch (Exception $e) {
  $double = preg_replace('/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/', 'TIME', $e->getMessage());
}
$count = $db->querySingle('SELECT count(*) FROM runs');
if (str_contains($double, 'run 1 is already active') && $count == 1) {
  $passed++;
  echo "ok - execute() then fetchArray() runs start_run() twice: $double\n";
} else {
  $failed++;
  echo "not ok - the double step: $double, $count runs\n";
}
$db->close();
@unlink("$tmp/app.db");
@unlink("$tmp/double.db");
@rmdir($tmp);
echo "$passed passed, $failed failed\n";
exit($failed > 0 || $passed == 0 ? 1 : 0);
