// The shared client cases (tests/clients/cases.json) in Java's JDBC with the
// xerial sqlite-jdbc driver (Debian's libxerial-sqlite-jdbc-java, which runs
// the system's SQLite), as a Java program would use it; run as a source file:
//   java -cp /usr/share/java/sqlite-jdbc.jar tests/clients/Client.java build/runs.so
// Loading needs SQLiteConfig.enableLoadExtension(true), then
// SELECT load_extension(path). A failing statement throws
// org.sqlite.SQLiteException: getResultCode() is the extended result code as
// an SQLiteErrorCode (SQLITE_CONSTRAINT_UNIQUE, code 2067, for "already
// active"), getErrorCode() the primary code, and getMessage() is
// "[NAME] SQLite's description (SQLite's message)". The JDK has no JSON
// parser: the cases are read with SQLite's JSON functions.
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Objects;
import org.sqlite.SQLiteConfig;
import org.sqlite.SQLiteException;

public class Client {
  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: java Client.java EXTENSION");
      System.exit(2);
    }
    Path here = Path.of(System.getProperty("cases", "tests/clients/cases.json"));
    String json = Files.readString(here);
    Path tmp = Files.createTempDirectory("sqlite-runs-java-");
    int passed = 0;
    int failed = 0;
    // The lines a Java program writes.
    SQLiteConfig config = new SQLiteConfig();
    config.enableLoadExtension(true);
    try (Connection db = config.createConnection("jdbc:sqlite:" + tmp.resolve("app.db"));
         Connection cases = DriverManager.getConnection("jdbc:sqlite::memory:")) {
      try (PreparedStatement load = db.prepareStatement("SELECT load_extension(?)")) {
        load.setString(1, args[0]);
        load.executeQuery().close();
      }
      try (PreparedStatement busy = db.prepareStatement("SELECT runs_busy_timeout(5000)")) {
        busy.executeQuery().close();
      }
      PreparedStatement steps = cases.prepareStatement(
          "SELECT key + 1, json_extract(value, '$.sql'), value, json_extract(value, '$.error.code'),"
              + " json_extract(value, '$.error.message'), json_extract(value, '$.result')"
              + " FROM json_each(?, '$.steps')");
      steps.setString(1, json);
      PreparedStatement arguments =
          cases.prepareStatement("SELECT type, value FROM json_each(?, '$.args')");
      try (ResultSet step = steps.executeQuery()) {
        while (step.next()) {
          String name = step.getInt(1) + ": " + step.getString(2);
          String want;
          if (step.getObject(4) != null) {
            want = "error " + step.getInt(4) + " " + step.getString(5);
          } else {
            want = "value " + step.getString(6);
          }
          String got;
          try (PreparedStatement stmt = db.prepareStatement(step.getString(2))) {
            arguments.setString(1, step.getString(3));
            int i = 0;
            try (ResultSet arg = arguments.executeQuery()) {
              while (arg.next()) {
                ++i;
                switch (arg.getString(1)) {
                  case "integer" -> stmt.setLong(i, arg.getLong(2));
                  case "null" -> stmt.setObject(i, null);
                  default -> stmt.setString(i, arg.getString(2));
                }
              }
            }
            try (ResultSet row = stmt.executeQuery()) {
              row.next();
              got = "value " + row.getString(1);
            }
          } catch (SQLiteException e) {
            String prefix = "[" + e.getResultCode().name() + "] ";
            String message = e.getMessage().replaceAll("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z", "TIME");
            // "[NAME] description (message)": keep the message.
            int open = message.indexOf(" (");
            got = "error " + e.getResultCode().code + " "
                + (message.startsWith(prefix) && open >= 0 && message.endsWith(")")
                       ? message.substring(open + 2, message.length() - 1) : message);
            if (e.getErrorCode() != (e.getResultCode().code & 0xff)) got += " (primary " + e.getErrorCode() + ")";
          }
          if (Objects.equals(got, want)) {
            ++passed;
            System.out.println("ok - " + name);
          } else {
            ++failed;
            System.out.println("not ok - " + name + "\n  expected " + want + "\n  got      " + got);
          }
        }
      }
    } finally {
      Files.deleteIfExists(tmp.resolve("app.db"));
      Files.deleteIfExists(tmp);
    }
    System.out.println(passed + " passed, " + failed + " failed");
    System.exit(passed > 0 && failed == 0 ? 0 : 1);
  }
}
