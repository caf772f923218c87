# The shared client cases (tests/clients/cases.json) in Ruby's sqlite3 gem
# (Debian's ruby-sqlite3), as a Ruby program would use it:
#   ruby tests/clients/client.rb build/runs.so
# A failing statement raises a subclass of SQLite3::Exception named after the
# primary result code (SQLite3::ConstraintException for "already active",
# SQLite3::SQLException for SQLITE_ERROR); its #code is the extended result
# code once extended_result_codes is set, the primary one otherwise. The gem
# binds Integer as INTEGER and String as TEXT.
require 'json'
require 'sqlite3'
require 'tmpdir'

abort 'usage: ruby client.rb EXTENSION' unless ARGV.length == 1
extension = ARGV[0]
cases = JSON.parse(File.read(File.join(__dir__, 'cases.json')))
classes = { 1 => SQLite3::SQLException, 19 => SQLite3::ConstraintException }
passed = failed = 0
Dir.mktmpdir('sqlite-runs-ruby-') do |tmp|
  # The lines a Ruby program writes.
  db = SQLite3::Database.new(File.join(tmp, 'app.db'))
  db.extended_result_codes = true
  db.enable_load_extension(true)
  db.load_extension(extension)
  db.enable_load_extension(false)
  db.get_first_value('SELECT runs_busy_timeout(5000)')

  cases['steps'].each_with_index do |step, i|
    name = "#{i + 1}: #{step['sql']}"
    begin
      got = [:value, db.get_first_value(step['sql'], step.fetch('args', []))]
    rescue SQLite3::Exception => e
      got = [e.class, e.code, e.message.gsub(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/, 'TIME')]
    end
    want = if (error = step['error'])
             [classes.fetch(error['code'] & 0xff), error['code'], error['message']]
           else
             [:value, step['result']]
           end
    if got == want
      passed += 1
      puts "ok - #{name}"
    else
      failed += 1
      puts "not ok - #{name}\n  expected #{want.inspect}\n  got      #{got.inspect}"
    end
  end
  db.close
end
puts "#{passed} passed, #{failed} failed"
exit(failed.zero? && passed.positive? ? 0 : 1)
