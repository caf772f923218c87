#include "test_db.h"

namespace {

using runs_test::TestDb;

TEST(Smoke, MigrateStartAndRefuseASecondRun) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), "2");
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 42),
            "start_run(): run 1 is already active (scop");
}

}  // namespace
